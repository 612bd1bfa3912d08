"""Typed FastAPI dependencies: the runtime, a database session per request, the caller, and the rows they may
reach. Every route that takes an id gets its row through `resource(...)`, which applies the one authorization
rule (`nexus.identity.access`) to REST, SSE and WebSocket routes alike."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Path, WebSocket, WebSocketException, status
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from temporalio.client import Client

from models import ChatTurn, Conversation, MediaItem, MediaJob, Persona, User
from models.base import OwnedModel
from nexus.core.db import session_scope
from nexus.core.errors import Unavailable
from nexus.identity.access import Action, authorize
from nexus.identity.service import authenticate_api_key, redeem_ws_ticket
from nexus.runtime import Runtime


def get_runtime(conn: HTTPConnection) -> Runtime:
    return conn.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the handler returns and *before* the response is sent
    (scope="function"): a 2xx means the write is durable, and a failed commit is an error answer."""
    async with session_scope(runtime.engine) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

# Declares the scheme in the OpenAPI schema; the check itself is `get_current_user` (it also serves WebSockets).
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer nx_...`")


async def deny(conn: HTTPConnection, code: int, message: str) -> NoReturn:
    """Refuse the request: an HTTP error, or for a WebSocket a close with 4000 + code after the handshake
    (a close before accepting reaches the browser as a bare 403, without the reason)."""
    if isinstance(conn, WebSocket):
        await conn.accept()
        raise WebSocketException(code=4000 + code, reason=message)
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    raise HTTPException(code, message, headers=headers)


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def get_current_user(conn: HTTPConnection, runtime: RuntimeDep) -> User:
    """The caller, from an API key in the Authorization header; a WebSocket (browsers cannot set its headers)
    may instead pass a single-use `?ticket=` from `POST /api/ws-ticket`, or, for non-browser clients, `?token=`.
    Query strings never reach a log (api/access_log.py)."""
    token = _bearer(conn)
    ticket = conn.query_params.get("ticket") if isinstance(conn, WebSocket) and token is None else None
    if token is None and isinstance(conn, WebSocket) and ticket is None:
        token = conn.query_params.get("token") or None
    if token is None and ticket is None:
        await deny(conn, status.HTTP_401_UNAUTHORIZED, "missing credentials: send `Authorization: Bearer <api key>`")
    # Its own short transaction: the key's last-use stamp is committed at once, never held by a long request.
    async with session_scope(runtime.engine) as session:
        user = await (redeem_ws_ticket(session, ticket) if ticket else authenticate_api_key(session, token or ""))
    if user is None:
        await deny(
            conn,
            status.HTTP_401_UNAUTHORIZED,
            "invalid, expired or used ticket" if ticket else "invalid or revoked API key",
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_temporal(runtime: RuntimeDep) -> Client:
    try:
        return await runtime.temporal()
    except Exception as exc:
        raise Unavailable("Temporal", str(exc) or type(exc).__name__) from exc


TemporalDep = Annotated[Client, Depends(get_temporal)]


def resource(model: type[OwnedModel], param: str, what: str, action: Action) -> Callable[..., Awaitable[Any]]:
    """A dependency that loads `model` by the path parameter `param` if the caller may `action` it, else 404."""

    async def dependency(conn: HTTPConnection, user: User, session: AsyncSession, **path: uuid.UUID) -> Any:
        found = await authorize(session, model, user.id, path[param], action)
        if found is None:
            await deny(conn, status.HTTP_404_NOT_FOUND, f"no such {what}")
        return found

    kw = inspect.Parameter.KEYWORD_ONLY
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("conn", kw, annotation=HTTPConnection),
            inspect.Parameter("user", kw, annotation=CurrentUser),
            inspect.Parameter("session", kw, annotation=SessionDep),
            inspect.Parameter(param, kw, annotation=Annotated[uuid.UUID, Path()]),
        ]
    )
    dependency.__name__ = f"{action}_{model.__tablename__}"
    return dependency


ReadableMedia = Annotated[MediaItem, Depends(resource(MediaItem, "media_id", "media item", Action.read))]
WritableMedia = Annotated[MediaItem, Depends(resource(MediaItem, "media_id", "media item", Action.write))]
ReadableJob = Annotated[MediaJob, Depends(resource(MediaJob, "job_id", "job", Action.read))]
WritableJob = Annotated[MediaJob, Depends(resource(MediaJob, "job_id", "job", Action.write))]
ReadableTurn = Annotated[ChatTurn, Depends(resource(ChatTurn, "turn_id", "chat turn", Action.read))]
ReadableConversation = Annotated[
    Conversation, Depends(resource(Conversation, "conversation_id", "conversation", Action.read))
]
WritableConversation = Annotated[
    Conversation, Depends(resource(Conversation, "conversation_id", "conversation", Action.write))
]
ReadablePersona = Annotated[Persona, Depends(resource(Persona, "persona_id", "persona", Action.read))]
WritablePersona = Annotated[Persona, Depends(resource(Persona, "persona_id", "persona", Action.write))]
