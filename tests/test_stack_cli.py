"""`nexus up`, `nexus doctor`, `nexus users create`, `nexus apikey create` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nexus.runtime import Runtime
from tests.harness import free_port, isolated_settings, nexus_env

NEXUS = [sys.executable, "-m", "nexus.cli"]


def _stack_env(data_dir: Path) -> tuple[dict[str, str], str, int]:
    s = isolated_settings(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_DATA_DIR=str(data_dir),
        NEXUS_API_PORT=str(s.api_port),
        NEXUS_TEMPORAL_PORT=str(s.temporal_port),
        NEXUS_TEMPORAL_UI_PORT=str(s.temporal_ui_port),
        NEXUS_TEMPORAL_HTTP_PORT=str(s.temporal_http_port),
        NEXUS_TEMPORAL_METRICS_PORT=str(s.temporal_metrics_port),
    )
    return env, f"http://127.0.0.1:{s.api_port}", s.temporal_ui_port


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def _postgres_pids(pg_dir: Path) -> set[int]:
    out = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if f"-D {pg_dir}" in line}


def _run_up_until_ready(env: dict[str, str], api: str, timeout: float = 120) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*NEXUS, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{api}/health/ready", timeout=5).status_code == 200:
                return proc, api
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("nexus up never became ready")


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[float, str]:
    started = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    return time.monotonic() - started, out


@pytest.mark.timeout(400)
def test_nexus_up_runs_everything_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env, api, ui_port = _stack_env(data_dir)

    proc, api = _run_up_until_ready(env, api)
    tree = _descendants(proc.pid)
    key_file = data_dir / "dev-api-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    ready = httpx.get(f"{api}/health/ready").json()
    assert ready["status"] == "ok" and not ready["failing"]
    assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10).status_code == 200  # Temporal Web UI
    me = httpx.get(f"{api}/api/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["is_admin"]
    assert _postgres_pids(data_dir / "postgres")

    elapsed, out = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, out
    assert elapsed < 10, f"stopping took {elapsed:.1f}s"
    assert "Nexus is up" in out and str(key_file) in out
    time.sleep(0.5)
    assert not (tree & _descendants(1) | _postgres_pids(data_dir / "postgres")), "processes left behind"

    # Second run: same key, same users.
    proc, api = _run_up_until_ready(env, api)
    assert key_file.read_text().strip() == key
    assert httpx.get(f"{api}/api/me", headers={"Authorization": f"Bearer {key}"}).json()["id"] == me.json()["id"]
    elapsed, out = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0 and elapsed < 10, out
    assert "existing key reused" in out


def test_doctor_passes_against_a_running_stack(runtime: Runtime, database_url: str) -> None:
    result = subprocess.run(
        [*NEXUS, "doctor"], env=nexus_env(runtime.settings, database_url), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("ffmpeg", "chromaprint", "whisper model", "embedding model", "temporal", "database", "storage"):
        assert component in result.stdout


def test_doctor_fails_and_names_what_is_missing(tmp_path: Path, runtime: Runtime, database_url: str) -> None:
    env = nexus_env(runtime.settings, database_url)
    env["NEXUS_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    result = subprocess.run([*NEXUS, "doctor"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "MISSING" in result.stdout and "temporal" in result.stdout


def test_users_and_apikey_commands(runtime: Runtime, database_url: str) -> None:
    env = nexus_env(runtime.settings, database_url)
    email = f"cli-{os.getpid()}-{time.time_ns()}@example.test"
    created = subprocess.run([*NEXUS, "users", "create", "--email", email], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    again = subprocess.run([*NEXUS, "users", "create", "--email", email], env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stdout

    issued = subprocess.run([*NEXUS, "apikey", "create", "--email", email], env=env, capture_output=True, text=True)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("nx_")

    unknown = subprocess.run(
        [*NEXUS, "apikey", "create", "--email", "nobody@example.test"], env=env, capture_output=True, text=True
    )
    assert unknown.returncode == 1 and "nexus users create" in unknown.stdout
