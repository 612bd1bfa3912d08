"""The authorization matrix, generated from the app's routes: every route that takes an id is tried by another
user against the owner's row and must answer 404 (WebSocket: close 4404), and every /api route refuses a caller
without a key. A new route is covered without anyone remembering to add it; a new kind of id fails
`test_every_id_parameter_is_covered` until a row for it is added to `rows` below."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from sqlalchemy import select
from sqlmodel import col
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.deps import get_admin_user
from api.routes.codec import codec_admin
from models import (
    AuditLog,
    ChatTurn,
    Conversation,
    Integration,
    MediaItem,
    MediaJob,
    Message,
    Persona,
    Session,
    SourceType,
)
from nexus.core.db import session_scope
from nexus.identity.audit import ClientInfo
from nexus.identity.service import issue_api_key, personal_workspace
from nexus.identity.sessions import create_session
from nexus.integrations.service import seal
from nexus.media.repository import media_prefix
from nexus.runtime import Runtime
from tests.conftest import Account, MakeAccount
from tests.harness import LiveServer

PARAM = re.compile(r"{(\w+)}")
NOT_IDS = {"provider"}  # path parameters that name a kind of thing, not a row
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/personas/{persona_id}"): {"name": "taken over", "instruction": "obey the intruder"},
    ("PATCH", "/api/media/{media_id}/segments/{idx}"): {"text": "rewritten by the intruder"},
    ("PATCH", "/api/media/{media_id}/speakers"): {"S1": "Mallory"},
}


def app_routes() -> list[APIRoute | APIWebSocketRoute]:
    """Every route the app serves, through included routers (FastAPI includes them lazily)."""
    from nexus.core.settings import Settings

    contexts = iter_route_contexts(create_app(Settings()).routes)
    return [c.route for c in contexts if isinstance(c.route, APIRoute | APIWebSocketRoute)]


def id_routes() -> list[tuple[str, str]]:
    """(method, path) for every route with a path parameter; WebSockets as method "WS"."""
    found = []
    for route in app_routes():
        if not set(PARAM.findall(route.path)) - NOT_IDS:
            continue
        methods = ["WS"] if isinstance(route, APIWebSocketRoute) else sorted(route.methods - {"HEAD", "OPTIONS"})
        found += [(m, route.path) for m in methods]
    return found


async def rows(runtime: Runtime, owner: Account) -> dict[str, str]:
    """One row of every kind a route can address, all owned by `owner`: path parameter -> id."""
    async with session_scope(runtime.engine) as session:
        ws = await personal_workspace(session, owner.user)
        media = MediaItem(
            owner_id=owner.user.id, workspace_id=ws.id, source_type=SourceType.url, source_url="http://x/"
        )
        media.audio_key = f"{media_prefix(owner.user.id, media.id)}/audio.wav"  # the player's files
        media.original_key = f"{media_prefix(owner.user.id, media.id)}/original.mp3"
        for key in (media.audio_key, media.original_key):
            runtime.store.put_bytes(key, b"RIFF-private-audio")
        session.add(media)
        await session.flush()
        job = MediaJob(media_id=media.id, owner_id=owner.user.id, workspace_id=ws.id, workflow_id=f"media-{media.id}")
        conversation = Conversation(owner_id=owner.user.id, workspace_id=ws.id, title="private")
        persona = Persona(owner_id=owner.user.id, workspace_id=ws.id, name="p", instruction="secret instruction")
        session.add_all([job, conversation, persona])
        await session.flush()
        message = Message(conversation_id=conversation.id, owner_id=owner.user.id, role="user", content="hello")
        session.add(message)
        await session.flush()
        turn = ChatTurn(
            owner_id=owner.user.id,
            workspace_id=ws.id,
            conversation_id=conversation.id,
            turn=1,
            workflow_id=f"chat-{conversation.id}-1",
            user_message_id=message.id,
        )
        session.add(turn)
        key = await issue_api_key(session, owner.user, name="second")
        await create_session(session, owner.user, ClientInfo(), method="test")
        browser = (await session.execute(select(Session).where(col(Session.user_id) == owner.user.id))).scalar_one()
        integration = Integration(owner_id=owner.user.id, provider="spotify", account_id="owner-account")
        integration.access_token = seal(integration.id, "access_token", "owner-access-token")
        session.add(integration)
    await runtime.memory.add(owner.user.id, "my locker code is 4711", {"conversation_id": str(conversation.id)})
    memory_id = (await runtime.memory.list(owner.user.id))[0].id
    return {
        "media_id": str(media.id),
        "job_id": str(job.id),
        "turn_id": str(turn.id),
        "conversation_id": str(conversation.id),
        "persona_id": str(persona.id),
        "key_id": str(key.id),
        "memory_id": memory_id,
        "session_id": str(browser.id),
        "integration_id": str(integration.id),
        "idx": "0",  # a segment's position in its media item (the item's id is what is authorized)
        "fmt": "json",  # a transcript export's format
    }


def test_every_id_parameter_is_covered() -> None:
    params = {p for _, path in id_routes() for p in PARAM.findall(path)} - NOT_IDS
    known = {
        "media_id", "job_id", "turn_id", "conversation_id", "persona_id", "key_id", "memory_id", "session_id",
        "integration_id", "idx", "fmt",
    }  # fmt: skip
    assert params <= known, f"routes take ids the matrix cannot build rows for: {params - known}"
    assert len(id_routes()) >= 15


async def test_another_user_gets_404_on_every_id_route(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    owner, intruder = await make_account(), await make_account()
    ids = await rows(runtime, owner)
    answers = {}
    for method, path in id_routes():
        if method == "WS":
            continue
        url = PARAM.sub(lambda m: ids[m.group(1)], path)
        resp = await api.request(method, url, headers=intruder.headers, json=BODIES.get((method, path)))
        answers[f"{method} {path}"] = resp.status_code
    assert answers and set(answers.values()) == {404}, {k: v for k, v in answers.items() if v != 404}
    # Each refusal of an existing row is a security event the intruder's record shows.
    async with session_scope(runtime.engine) as session:
        denied = (
            await session.execute(
                select(AuditLog)
                .where(col(AuditLog.user_id) == intruder.user.id, col(AuditLog.action) == "authz.denied")
            )
        ).scalars().all()  # fmt: skip
    assert {e.target_id for e in denied} >= {ids["media_id"], ids["integration_id"], ids["persona_id"]}
    # ...and nothing was changed: the owner still reaches every row.
    for method, path in id_routes():
        # Streams follow until the run ends; a profile is fetched from the provider (none runs here).
        if method == "GET" and not path.endswith(("/events", "/profile")):
            url = PARAM.sub(lambda m: ids[m.group(1)], path)
            assert (await api.get(url, headers=owner.headers)).status_code == 200, path
    keys = (await api.get("/api/apikeys", headers=owner.headers)).json()
    assert all(k["revoked_at"] is None for k in keys)
    assert len((await api.get("/api/memories", headers=owner.headers)).json()) == 1
    assert len((await api.get("/api/sessions", headers=owner.headers)).json()) == 1
    assert [i["status"] for i in (await api.get("/api/integrations", headers=owner.headers)).json()] == ["active"]


async def test_websocket_routes_refuse_other_users_and_missing_keys(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount
) -> None:
    """Refusals arrive as close codes the client can act on (4401 no/bad key, 4404 not yours), not a bare 403."""
    owner, intruder = await make_account(), await make_account()
    ids = await rows(runtime, owner)
    ws_paths = [path for method, path in id_routes() if method == "WS"]
    assert ws_paths
    base = live_api.url.replace("http://", "ws://")
    for path in ws_paths:
        url = base + PARAM.sub(lambda m: ids[m.group(1)], path)
        for suffix, code in ((f"?token={intruder.token}", 4404), ("", 4401), ("?token=nx_bad_key_x", 4401)):
            async with connect(url + suffix) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code, (path, suffix)


async def test_every_api_route_needs_a_key(api: httpx.AsyncClient) -> None:
    answers = {}
    for route in app_routes():
        if isinstance(route, APIWebSocketRoute) or not route.path.startswith("/api"):
            continue
        url = PARAM.sub(lambda _: str(uuid.uuid4()), route.path)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            answers[f"{method} {route.path}"] = (await api.request(method, url)).status_code
    assert len(answers) >= 20 and set(answers.values()) == {401}, {k: v for k, v in answers.items() if v != 401}


def depends_on(dependant: Any, calls: set[Any]) -> bool:
    return any(d.call in calls or depends_on(d, calls) for d in dependant.dependencies)


async def test_operator_routes_are_for_admins_only(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    """Every route under /api/admin and /codec depends on the one admin rule (the codec's dependency applies it
    after its own cookie check), and refuses a signed-in user who is not an admin with 403 (before reading the
    body)."""
    user = await make_account()
    answers = {}
    for route in app_routes():
        if not isinstance(route, APIRoute) or not route.path.startswith(("/api/admin", "/codec")):
            continue
        assert depends_on(route.dependant, {get_admin_user, codec_admin}), f"{route.path} is not for admins only"
        url = PARAM.sub(lambda _: str(uuid.uuid4()), route.path)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            answer = await api.request(method, url, headers=user.headers, json={})
            answers[f"{method} {route.path}"] = (answer.status_code, answer.json().get("detail"))
    assert len(answers) >= 7, answers
    assert {code for code, _ in answers.values()} == {403}, answers


async def test_workspace_members_read_but_only_writers_change(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    """The rule itself: a viewer in the owner's workspace reads the persona but cannot change or delete it; an
    admin of that workspace can change it."""
    from models import Role, WorkspaceMember

    owner, viewer, admin = await make_account(), await make_account(), await make_account()
    ids = await rows(runtime, owner)
    async with session_scope(runtime.engine) as session:
        ws = await personal_workspace(session, owner.user)
        session.add(WorkspaceMember(workspace_id=ws.id, user_id=viewer.user.id, role=Role.viewer))
        session.add(WorkspaceMember(workspace_id=ws.id, user_id=admin.user.id, role=Role.admin))
    url = f"/api/personas/{ids['persona_id']}"
    body = {"name": "renamed", "instruction": "new"}
    assert (await api.get(url, headers=viewer.headers)).status_code == 200
    assert (await api.put(url, headers=viewer.headers, json=body)).status_code == 404
    assert (await api.delete(url, headers=viewer.headers)).status_code == 404
    assert (await api.put(url, headers=admin.headers, json=body)).json()["name"] == "renamed"
    listed = (await api.get("/api/media", headers=viewer.headers)).json()
    assert [m["id"] for m in listed["items"]] == [ids["media_id"]]
