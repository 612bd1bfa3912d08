"""docker-compose.yml describes the production deployment, stays in step with the settings it sets, and would start:
every dependency is waited for, every secret is required, and only the API is reachable from other machines.

No Docker engine runs in CI, so `docker-compose config` (which needs none) validates and renders the file, and the
assertions read its rendered output: what compose would actually run, after interpolation and YAML merges. The
container health checks (deploy/healthcheck.py) run here against the test stack.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import uuid
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexus.core.orchestration import Queue
from nexus.core.settings import SHARED_SETTINGS, Settings
from nexus.runtime import Runtime
from tests.harness import LiveServer, free_port, nexus_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "deploy" / "compose.gpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"

APPS = ["api", *(f"worker-{q}" for q in Queue)]
# Values that pass every check; the failure tests drop one at a time.
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-secret",
    "MINIO_ROOT_USER": "nexus-test",
    "MINIO_ROOT_PASSWORD": "minio-test-secret",
    "NEXUS_SECRET_KEYS": "k1=9OGKsKX0Kq2w8eHcXJmHGGhf6pQ6K8kGz9wX6QvQe2A",
}


def compose_text() -> str:
    """docker-compose.yml without its comment lines (which quote the ${VAR:?} syntax)."""
    return "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))


def required_variables() -> set[str]:
    """Every ${VAR:?message} in the compose file: compose refuses to start while one is unset or empty."""
    return set(re.findall(r"\$\{(\w+):\?", compose_text()))


def docker_compose() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated: run "
            "`scripts/system-deps.sh --test` (`make test` does), or `apt-get install docker-compose`"
        )
    return tool


def compose_config(tmp_path: Path, env: dict[str, str], *overrides: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with exactly `env`: an explicit env file replaces any developer .env in the repo,
    and the process environment carries nothing but PATH, so no stray POSTGRES_PASSWORD satisfies a check."""
    env_file = tmp_path / f"compose-{uuid.uuid4().hex[:6]}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    files = [arg for f in (COMPOSE, *overrides) for arg in ("-f", str(f))]
    return subprocess.run(
        [docker_compose(), "--env-file", str(env_file), *files, "config"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        timeout=60,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def published(port: str | dict[str, Any]) -> tuple[str, str]:
    """(host IP, host port) of a rendered port, in either syntax (compose v1 writes both, v2 the long one)."""
    if isinstance(port, dict):
        return port.get("host_ip", "0.0.0.0"), str(port["published"])
    parts = port.split("/")[0].split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("0.0.0.0", parts[0])


def mounted(volume: str | dict[str, Any]) -> tuple[str, str]:
    """(source, target) of a rendered volume: short syntax from compose v1, long syntax from v2."""
    if isinstance(volume, dict):
        return volume.get("source", ""), volume["target"]
    source, target, *_ = volume.split(":")
    return source, target


def test_compose_file_has_every_part_and_only_real_settings() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {
        "postgres",
        "temporal",
        "temporal-ui",
        "minio",
        "minio-init",
        "migrate",
        "api",
        "worker-workflows",
        "worker-cpu",
        "worker-gpu",
        "worker-llm",
    } <= set(services)
    for queue in Queue:
        assert services[f"worker-{queue}"]["command"] == ["worker", "--queue", queue]
    env = spec["x-nexus-env"]
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith("NEXUS_") and name.removeprefix("NEXUS_").lower() in fields, name
    assert env["NEXUS_STORAGE_URL"].startswith("s3://") and "NEXUS_TEMPORAL_ADDRESS" in env
    # Distributed: no container falls back to a private database, store or keyring (each shared setting is set).
    assert env["NEXUS_MODE"] == "distributed"
    assert {f"NEXUS_{name.upper()}" for name in SHARED_SETTINGS} <= set(env)


def test_every_secret_is_required_and_documented(tmp_path: Path) -> None:
    required = required_variables()
    assert required == set(SECRETS), "keep SECRETS in step with the ${VAR:?} variables of docker-compose.yml"
    text = compose_text()
    for name in required:
        # No fallback anywhere: one ${VAR:-default} would let that service start on a password printed here.
        assert not re.search(rf"\$\{{{name}:?-", text), f"{name} has a default somewhere in docker-compose.yml"
    documented = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert required <= documented, f".env.example does not document {sorted(required - documented)}"
    for name in sorted(required):
        for value in (None, ""):  # unset, and set but empty
            env = {k: v for k, v in SECRETS.items() if k != name} | ({} if value is None else {name: value})
            result = compose_config(tmp_path, env)
            assert result.returncode != 0, f"compose started without {name}={value!r}"
            assert f"set {name} in .env" in result.stderr, result.stderr


def test_bucket_exists_before_anything_uses_it(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    init = services["minio-init"]
    bucket = services["api"]["environment"]["NEXUS_STORAGE_URL"].removeprefix("s3://")
    assert init["environment"]["BUCKET"] == bucket
    assert "mc mb --ignore-existing" in " ".join(init["command"])
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["minio"]["healthcheck"]["test"]
    for name in APPS:
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully", name


def test_migrate_waits_for_temporal_and_everything_waits_for_migrate(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    # migrate registers search attributes: Temporal must be up AND have its namespace, which its check tests.
    assert services["migrate"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "search-attribute" in services["temporal"]["healthcheck"]["test"]
    assert services["postgres"]["healthcheck"]["test"]
    assert services["temporal-ui"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    for name in APPS:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_api_and_workers_have_health_checks_the_image_can_run(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    script = "/app/deploy/healthcheck.py"
    assert services["api"]["healthcheck"]["test"] == ["CMD", "python", script, "api"]
    for queue in Queue:
        assert services[f"worker-{queue}"]["healthcheck"]["test"] == ["CMD", "python", script, "worker", queue]
    dockerfile = DOCKERFILE.read_text()
    assert "WORKDIR /app" in dockerfile and "COPY deploy/healthcheck.py deploy/healthcheck.py" in dockerfile


def test_data_dir_is_a_named_volume(rendered: dict[str, Any]) -> None:
    data_dir = re.search(r"NEXUS_DATA_DIR=(\S+)", DOCKERFILE.read_text())
    assert data_dir is not None and data_dir.group(1) == "/data"
    for name in APPS:
        mounts = [mounted(v) for v in rendered["services"][name]["volumes"]]
        assert any(target == "/data" and source in rendered["volumes"] for source, target in mounts), name


def test_only_the_api_is_reachable_from_other_machines(rendered: dict[str, Any]) -> None:
    exposed = {}
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            host_ip, host_port = published(port)
            if host_ip != "127.0.0.1":
                exposed[name] = host_port
    assert exposed == {"api": "8000"}
    # Temporal's frontend and Web UI have no authentication: published on loopback only.
    assert [published(p)[0] for p in rendered["services"]["temporal"]["ports"]] == ["127.0.0.1"]
    assert [published(p)[0] for p in rendered["services"]["temporal-ui"]["ports"]] == ["127.0.0.1"]


def test_gpu_is_opt_in(rendered: dict[str, Any], tmp_path: Path) -> None:
    # Without the NVIDIA runtime compose cannot start a container that reserves a GPU: the base file asks for none.
    assert "deploy" not in rendered["services"]["worker-gpu"]
    result = compose_config(tmp_path, SECRETS, GPU_OVERRIDE)
    assert result.returncode == 0, result.stderr
    devices = yaml.safe_load(result.stdout)["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


# --- the health checks themselves, against the test stack ------------------------------------------------------


async def healthcheck(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str]:
    """Run deploy/healthcheck.py as the container would. Async: the API and workers under test share this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HEALTHCHECK), *args, env=env, cwd=cwd, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


def test_healthcheck_counts_only_this_hosts_pollers() -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.own_pollers(["1@abc123", "1@def456", "7@abc123.example", "abc123"], "abc123") == ["1@abc123"]


async def test_worker_healthcheck(runtime: Runtime, database_url: str, workers: None, tmp_path: Path) -> None:
    env = nexus_env(runtime.settings, database_url)
    # The session's workers may only just have sent their first poll; each check is a new process (slow to start
    # on a machine whose disk is busy).
    async with asyncio.timeout(90):
        while (result := await healthcheck(env, "worker", "cpu", cwd=tmp_path))[0] != 0:
            await asyncio.sleep(0.5)
    assert result[1].startswith("healthy:"), result

    nobody = env | {"NEXUS_TASK_QUEUE_PREFIX": f"nobody-{uuid.uuid4().hex[:8]}"}
    code, out = await healthcheck(nobody, "worker", "cpu", cwd=tmp_path)
    assert code == 1 and "no poller from this container" in out, out


async def test_api_healthcheck(runtime: Runtime, database_url: str, live_api: LiveServer, tmp_path: Path) -> None:
    env = nexus_env(runtime.settings, database_url) | {"NEXUS_API_HOST": "0.0.0.0"}  # as in compose
    code, out = await healthcheck(env | {"NEXUS_API_PORT": live_api.url.rsplit(":", 1)[1]}, "api", cwd=tmp_path)
    assert code == 0 and out.startswith("healthy:"), out

    code, out = await healthcheck(env | {"NEXUS_API_PORT": str(free_port())}, "api", cwd=tmp_path)
    assert code == 1 and out.startswith("unhealthy:"), out
