"""With Postgres down, every route says so (hardening item 4): a 503 with Retry-After and a message naming the
database, never a 500 with a traceback. Postgres here is a port nobody listens on."""

from __future__ import annotations

import uuid

import httpx

from api.app import create_app
from nexus.core.db import make_engine
from nexus.runtime import Runtime
from tests.api.test_authorization import PARAM, app_routes
from tests.harness import free_port


async def test_every_route_answers_503_while_the_database_is_down(runtime: Runtime) -> None:
    dead = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nexus", pool_timeout_s=2)
    rt = Runtime(runtime.settings, dead, runtime.store, runtime.queues, runtime.database_url)
    app = create_app(runtime.settings, rt)
    app.state.runtime = rt  # ASGITransport runs no lifespan
    headers = {"Authorization": "Bearer nx_0123abcd_" + "x" * 43}
    answers: dict[str, tuple[int, str]] = {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as api:
            for route in app_routes():
                if not route.path.startswith("/api") or not hasattr(route, "methods"):
                    continue
                url = PARAM.sub(lambda _: str(uuid.uuid4()), route.path)
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    resp = await api.request(method, url, headers=headers, json={})
                    answers[f"{method} {route.path}"] = (resp.status_code, resp.headers.get("retry-after", ""))
                    if resp.status_code == 503:
                        assert "database" in resp.json()["detail"], resp.text
    finally:
        await dead.dispose()
    assert len(answers) >= 20
    wrong = {k: v for k, v in answers.items() if v[0] != 503 or not v[1]}
    assert not wrong, wrong
