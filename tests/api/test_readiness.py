"""Readiness answers fast while a dependency is frozen (hardening item 5): checks run at once, with short
timeouts, and the answer names what is down."""

from __future__ import annotations

import socket
import time

import httpx

from api.app import create_app
from nexus.runtime import Runtime


async def test_ready_answers_503_quickly_when_temporal_is_frozen(runtime: Runtime) -> None:
    # A frozen server: it accepts TCP connections and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        frozen = runtime.settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
        rt = Runtime(frozen, runtime.engine, runtime.store, runtime.queues, runtime.database_url)
        app = create_app(frozen, rt)
        app.state.runtime = rt  # ASGITransport runs no lifespan
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            started = time.monotonic()
            resp = await client.get("/health/ready")
            elapsed = time.monotonic() - started
    body = resp.json()
    assert resp.status_code == 503 and "temporal" in body["failing"], body
    assert body["components"]["database"]["ok"], body
    # Old behaviour: a 5 s connect timeout, then checks one after another. Now 2 s and parallel checks.
    assert elapsed < 4, elapsed
