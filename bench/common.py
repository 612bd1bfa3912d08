"""Shared by the benchmarks: a throwaway `nexus up` on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402


def start_stack(data_dir: Path) -> subprocess.Popen[bytes]:
    """Start the stack on free ports under `data_dir`; this process's NEXUS_* env then points at it."""
    ports = {k: str(free_port()) for k in ("API", "TEMPORAL", "TEMPORAL_UI", "TEMPORAL_HTTP", "TEMPORAL_METRICS")}
    os.environ.update({f"NEXUS_{k}_PORT": v for k, v in ports.items()})
    os.environ["NEXUS_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus.cli", "up"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{ports['API']}/health/ready", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the stack did not become ready")
