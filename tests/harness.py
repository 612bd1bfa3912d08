"""Real components for tests: a Temporal dev server, embedded Postgres, in-process workers, a live API server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

from nexus.core.embedded import temporal_dev_server_args, temporal_env
from nexus.core.settings import Settings


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range. A port the kernel hands out for `bind(0)`
    comes from that range, where any outgoing connection may take it as its local end before the server that
    was given it binds it (CI saw the API lose its port so)."""
    low = _ephemeral_low()
    for _ in range(500):
        port = random.randrange(10_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_port(port: int, timeout: float = 120) -> None:
    """Generous: on a machine whose disk is saturated, starting a server can take a minute."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


def isolated_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for an isolated stack: every port free, every path under `data_dir`."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "api_port": free_port(),
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "temporal_http_port": free_port(),
        "temporal_metrics_port": free_port(),
        "task_queue_prefix": f"test-{uuid.uuid4().hex[:8]}",
        "allow_private_urls": True,
        # Suites fire hundreds of deliberate bad-key requests from one address; the limit's own test lowers it.
        "auth_rate_limit_per_minute": 100_000,
        # Tests change settings of the session's in-process workers for a while (providers, say): a short beat
        # keeps their record, which subprocesses such as `nexus doctor` compare with theirs, current.
        "worker_heartbeat_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class TemporalServer:
    """The same dev server `nexus up` runs, as a subprocess the tests can kill and restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.settings.data_dir / "temporal.log", "ab")
        self.proc = subprocess.Popen(
            temporal_dev_server_args(self.settings), env=temporal_env(), stdout=log, stderr=log
        )
        wait_port(self.settings.temporal_port)

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop(9)
        self.start()


class LiveServer:
    """uvicorn serving the app on a free loopback port, inside the test event loop."""

    def __init__(self, app: object, port: int) -> None:
        # Streams a test left open (an SSE follower of a job that never ends) must not hold up the session's end.
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(self.config)
        self.url = f"http://127.0.0.1:{port}"
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)


def nexus_env(settings: Settings, database_url: str) -> dict[str, str]:
    """Environment for a `nexus` subprocess that talks to the test stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_DATA_DIR=str(settings.data_dir),
        NEXUS_DATABASE_URL=database_url,
        NEXUS_TEMPORAL_ADDRESS=settings.temporal_target,
        NEXUS_TASK_QUEUE_PREFIX=settings.task_queue_prefix,
        NEXUS_API_PORT=str(settings.api_port),
        NEXUS_ALLOW_PRIVATE_URLS="true",
    )
    return env


async def wait_ready(client: httpx.AsyncClient, within_s: float = 30) -> httpx.Response:
    deadline = time.monotonic() + within_s
    while True:
        resp = await client.get("/health/ready")
        if resp.status_code == 200 or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.2)
