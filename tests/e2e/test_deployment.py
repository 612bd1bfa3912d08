"""docker-compose.yml describes the production deployment and stays in step with the settings it sets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from nexus.core.orchestration import Queue
from nexus.core.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_file_has_every_part_and_only_real_settings() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {
        "postgres",
        "temporal",
        "temporal-ui",
        "minio",
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


def test_compose_file_validates_with_docker_compose_when_installed() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        import pytest

        pytest.skip("docker-compose is not installed (apt-get install docker-compose validates offline)")
    result = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
