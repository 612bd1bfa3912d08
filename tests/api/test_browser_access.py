"""What a browser gets: WebSocket tickets instead of keys in URLs, and CORS grants only for allowed origins."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from models import JobEvent, MediaStatus, WsTicket
from models.base import utcnow
from nexus.core.db import session_scope
from nexus.runtime import Runtime
from tests.api.test_authorization import rows
from tests.conftest import MakeAccount
from tests.harness import LiveServer


async def _close_code(url: str) -> int | None:
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_ws_ticket_opens_one_websocket_once(
    api: httpx.AsyncClient, live_api: LiveServer, runtime: Runtime, make_account: MakeAccount
) -> None:
    owner, intruder = await make_account(), await make_account()
    ids = await rows(runtime, owner)
    url = live_api.url.replace("http://", "ws://") + f"/ws/status/{ids['job_id']}"

    issued = await api.post("/api/ws-ticket", headers=owner.headers)
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]
    assert owner.token not in ticket
    async with session_scope(runtime.engine) as session:
        session.add(JobEvent(job_id=uuid.UUID(ids["job_id"]), stage=MediaStatus.pending, message="queued"))
    async with connect(f"{url}?ticket={ticket}") as ws:
        assert json.loads(await ws.recv())["stage"] == "pending"
    assert await _close_code(f"{url}?ticket={ticket}") == 4401  # single use: a replay is refused

    foreign = (await api.post("/api/ws-ticket", headers=intruder.headers)).json()["ticket"]
    assert await _close_code(f"{url}?ticket={foreign}") == 4404  # a ticket carries its user's rights, no more

    stale = (await api.post("/api/ws-ticket", headers=owner.headers)).json()["ticket"]
    async with session_scope(runtime.engine) as session:
        await session.execute(
            update(WsTicket).where(WsTicket.user_id == owner.user.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await _close_code(f"{url}?ticket={stale}") == 4401  # expired

    # A ticket is for WebSockets only: it is not an API credential.
    spare = (await api.post("/api/ws-ticket", headers=owner.headers)).json()["ticket"]
    assert (await api.get("/api/me", headers={"Authorization": f"Bearer {spare}"})).status_code == 401


async def test_cors_grants_only_allowed_origins(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    allowed = "http://localhost:3000"  # the default NEXUS_CORS_ORIGINS
    evil = "https://evil.example"

    ok = await api.get("/api/me", headers={**account.headers, "Origin": allowed})
    assert ok.headers["access-control-allow-origin"] == allowed
    assert ok.headers["access-control-allow-credentials"] == "true"
    bad = await api.get("/api/me", headers={**account.headers, "Origin": evil})
    assert "access-control-allow-origin" not in bad.headers
    assert "access-control-allow-credentials" not in bad.headers

    preflight = {"Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization"}
    granted = await api.options("/api/apikeys/x", headers={**preflight, "Origin": allowed})
    assert granted.status_code == 200 and granted.headers["access-control-allow-credentials"] == "true"
    refused = await api.options("/api/apikeys/x", headers={**preflight, "Origin": evil})
    assert refused.status_code == 400
    for header in ("access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods"):
        assert header not in refused.headers, header
