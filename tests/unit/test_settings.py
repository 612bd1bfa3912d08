"""Runtime configuration (`nexus.core.settings.Settings`).

Every port and path comes from NEXUS_* variables so two stacks can share a machine; unset external addresses mean
"start the embedded component"; bad values must fail at start-up, not as a confusing error later. Each test starts
from an environment with no NEXUS_* variables and reads no .env file unless it says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from nexus.core.orchestration import Queue
from nexus.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("NEXUS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults(tmp_path: Path) -> None:
    s = Settings(_env_file=None)
    assert s.data_dir == tmp_path.resolve() / "var"
    assert s.embedded_temporal and s.embedded_database
    assert s.temporal_target == "127.0.0.1:7233"
    assert s.api_base_url == "http://127.0.0.1:8000"
    assert s.objects_url == f"file://{tmp_path.resolve() / 'var' / 'objects'}"
    assert s.allow_private_urls is False


def test_env_prefix_is_nexus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "1111")  # no prefix: ignored
    monkeypatch.setenv("NEXUS_API_PORT", "9001")
    monkeypatch.setenv("NEXUS_ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("NEXUS_CORS_ORIGINS", '["https://app.example"]')
    s = Settings(_env_file=None)
    assert s.api_port == 9001
    assert s.api_base_url == "http://127.0.0.1:9001"
    assert s.allow_private_urls is True
    assert s.cors_origins == ["https://app.example"]


@pytest.mark.parametrize("raw", ["rel/data", "./rel/data", "rel/../rel/data"])
def test_relative_data_dir_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str) -> None:
    monkeypatch.setenv("NEXUS_DATA_DIR", raw)
    s = Settings(_env_file=None)
    assert s.data_dir.is_absolute()
    assert s.data_dir == tmp_path.resolve() / "rel" / "data"
    assert s.pg_dir == s.data_dir / "postgres"


def test_home_in_data_dir_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEXUS_DATA_DIR", "~/nexus")
    assert Settings(_env_file=None).data_dir == (tmp_path / "home" / "nexus").resolve()


def test_external_services_turn_embedded_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("NEXUS_DATABASE_URL", "postgresql+asyncpg://u:p@db/nexus")
    monkeypatch.setenv("NEXUS_STORAGE_URL", "s3://bucket/prefix")
    s = Settings(_env_file=None)
    assert not s.embedded_temporal and not s.embedded_database
    assert s.temporal_target == "temporal.internal:7233"
    assert s.objects_url == "s3://bucket/prefix"


def test_temporal_target_uses_host_and_port_when_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_TEMPORAL_PORT", "7300")
    s = Settings(_env_file=None)
    assert s.embedded_temporal
    assert s.temporal_target == "127.0.0.1:7300"


def test_concurrency_per_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    assert all(s.concurrency(q.value) >= 1 for q in Queue)  # every queue has a setting
    assert s.concurrency(Queue.gpu) == 1  # one transcription at a time on a CPU-only machine
    monkeypatch.setenv("NEXUS_GPU_CONCURRENCY", "3")
    monkeypatch.setenv("NEXUS_LLM_CONCURRENCY", "2")
    s = Settings(_env_file=None)
    assert s.concurrency("gpu") == 3
    assert s.concurrency("llm") == 2
    assert s.concurrency("cpu") == Settings.model_fields["cpu_concurrency"].default


@pytest.mark.parametrize(
    "name, value",
    [
        ("NEXUS_GPU_CONCURRENCY", "0"),
        ("NEXUS_CPU_CONCURRENCY", "-1"),
        ("NEXUS_WORKFLOWS_CONCURRENCY", "many"),
        ("NEXUS_API_PORT", "abc"),
        ("NEXUS_MAX_MEDIA_MB", "lots"),
        ("NEXUS_ALLOW_PRIVATE_URLS", "perhaps"),
    ],
)
def test_invalid_values_fail_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_GEMINI_API_KEY", "sk-very-secret")
    s = Settings(_env_file=None)
    assert s.gemini_api_key is not None and s.gemini_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in str(s)


def test_dot_env_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NEXUS_API_PORT=8123\nNEXUS_TEMPORAL_PORT=7999\n")
    monkeypatch.setenv("NEXUS_TEMPORAL_PORT", "7001")
    s = Settings()
    assert s.api_port == 8123
    assert s.temporal_port == 7001
    assert Settings(_env_file=None).api_port == 8000
