"""`nexus up`, `nexus doctor`, `nexus users create`, `nexus apikey create` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from nexus.ops.fleet import POLLER_LIVE_S
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


class Up:
    """`nexus up` as a subprocess whose output is collected as it is printed."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*NEXUS, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or []), daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_banner(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C to stop." not in self.output:
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, f"nexus up never became ready:\n{self.output}"
            time.sleep(0.2)

    def __enter__(self) -> Up:
        try:
            self.wait_banner()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Never leave a stack running behind a failed assertion."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def stop(self, sig: int) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        elapsed = time.monotonic() - started
        self.reader.join(5)
        return elapsed


@pytest.mark.timeout(400)
def test_nexus_up_runs_everything_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env, api, ui_port = _stack_env(data_dir)
    key_file = data_dir / "dev-api-key"
    metrics_port = free_port()

    with Up({**env, "NEXUS_WORKER_METRICS_PORT": str(metrics_port)}) as up:
        tree = _descendants(up.proc.pid)
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        ready = httpx.get(f"{api}/health/ready").json()
        assert ready["status"] == "ok" and not ready["failing"]
        # Metrics: the API's own, and the Temporal SDK's from each worker process (the cpu worker's port is +1).
        assert "nexus_queue_pollers" in httpx.get(f"{api}/metrics").text
        sdk = httpx.get(f"http://127.0.0.1:{metrics_port + 1}/metrics", timeout=10).text
        assert "temporal_" in sdk and "nexus-cpu" in sdk, sdk[:500]
        assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10).status_code == 200  # Temporal Web UI
        me = httpx.get(f"{api}/api/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and me.json()["is_admin"]
        assert _postgres_pids(data_dir / "postgres")

        elapsed = up.stop(signal.SIGINT)
        assert up.proc.returncode == 0, up.output
        assert elapsed < 10, f"stopping took {elapsed:.1f}s"
        assert "Nexus is up" in up.output and str(key_file) in up.output and "new key written" in up.output
    time.sleep(0.5)
    assert not (tree & _descendants(1) | _postgres_pids(data_dir / "postgres")), "processes left behind"

    # Second run: same key, same users.
    with Up(env) as up:
        assert key_file.read_text().strip() == key
        again = httpx.get(f"{api}/api/me", headers={"Authorization": f"Bearer {key}"})
        assert again.json()["id"] == me.json()["id"]
        elapsed = up.stop(signal.SIGTERM)
        assert up.proc.returncode == 0 and elapsed < 10, up.output
        assert "existing key reused" in up.output


def test_doctor_passes_against_a_running_stack(runtime: Runtime, database_url: str) -> None:
    # A worker an earlier test killed stays in Temporal's poller list for up to POLLER_LIVE_S, and the doctor rightly
    # reports it (polling, not reporting) until then: only that is waited out.
    deadline = time.monotonic() + POLLER_LIVE_S + 30
    env = nexus_env(runtime.settings, database_url)
    while True:
        result = subprocess.run([*NEXUS, "doctor"], env=env, capture_output=True, text=True, timeout=120)
        if result.returncode == 0 or "FleetMismatch" not in result.stdout or time.monotonic() > deadline:
            break
        time.sleep(10)
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


def test_distributed_mode_refuses_to_start_without_the_shared_settings(tmp_path: Path, database_url: str) -> None:
    """No process of a distributed deployment falls back to a component only its host can see: each exits at once,
    naming every unset shared setting, and creates nothing in its data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_MODE="distributed", NEXUS_DATA_DIR=str(tmp_path / "host"), NEXUS_DATABASE_URL=database_url)
    commands = [["worker", "--queue", "gpu"], ["api"], ["migrate"], ["users", "create", "--email", "a@b.test"],
                ["keys", "status"], ["cleanup", "--dry-run"], ["up"]]  # fmt: skip
    procs = [subprocess.Popen([*NEXUS, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]  # fmt: skip
    for command, proc in zip(commands, procs, strict=True):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (command, err)
        assert f"`nexus {command[0]}` needs these settings" in err
        for name in ("NEXUS_TEMPORAL_ADDRESS", "NEXUS_STORAGE_URL", "NEXUS_SECRET_KEYS"):
            assert name in err, (command, err)
        assert "NEXUS_DATABASE_URL" not in err
    assert not (tmp_path / "host").exists() or not any((tmp_path / "host").iterdir())

    # What makes the keyring still works, and doctor says what is missing instead of checking a private stack.
    keys = subprocess.run([*NEXUS, "keys", "generate"], env=env, capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0 and "=" in keys.stdout
    doctor = subprocess.run([*NEXUS, "doctor"], env=env, capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 1 and "distributed, but unset" in doctor.stdout
