"""Typed FastAPI dependencies: the runtime, a database session per request, the caller, and the rows they may
reach. Every route that takes an id gets its row through `resource(...)`, which applies the one authorization
rule (`nexus.identity.access`) to REST, SSE and WebSocket routes alike."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, WebSocket, WebSocketException, status
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from temporalio.client import Client

from models import ChatTurn, Conversation, Integration, MediaItem, MediaJob, Persona, User
from models.base import OwnedModel
from nexus.core.db import session_scope
from nexus.core.errors import Unavailable
from nexus.identity import audit, ratelimit
from nexus.identity.access import Action, authorize
from nexus.identity.audit import ClientInfo
from nexus.identity.service import authenticate_api_key, key_prefix, redeem_ws_ticket
from nexus.identity.sessions import authenticate_session, csrf_matches
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


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


SESSION_COOKIE = "nexus_session"
CSRF_COOKIE = "nexus_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_info(conn: HTTPConnection) -> ClientInfo:
    """Where the request came from (behind a proxy, run uvicorn with --proxy-headers so this is the client)."""
    return ClientInfo(ip=conn.client.host if conn.client else None, user_agent=conn.headers.get("user-agent"))


async def limit_attempts(conn: HTTPConnection, runtime: Runtime, scope: str, account: str | None = None) -> None:
    """Count one attempt at `scope` per IP (and per account) across all API processes; 429 past the limit."""
    keys = [f"{scope}:ip:{client_info(conn).ip}"] + ([f"{scope}:acct:{account}"] if account else [])
    wait = await ratelimit.hit(runtime.engine, keys, runtime.settings.auth_rate_limit_per_minute)
    if wait is not None:
        await _too_many(conn, runtime, scope, wait)


async def _too_many(conn: HTTPConnection, runtime: Runtime, scope: str, wait: int) -> NoReturn:
    await audit.record_now(
        runtime.engine, "ratelimit", target_type="scope", target_id=scope, outcome="denied", client=client_info(conn)
    )
    if isinstance(conn, WebSocket):
        await deny(conn, status.HTTP_429_TOO_MANY_REQUESTS, f"too many attempts; try again in {wait} s")
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many attempts; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def _origin_of(conn: HTTPConnection) -> str | None:
    origin = conn.headers.get("origin")
    if origin and origin != "null":
        return origin.lower()
    referer = conn.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


async def _check_csrf(conn: HTTPConnection, runtime: Runtime, session_token: str) -> None:
    """A cookie rides along with any site's request, so a state change by cookie must prove it came from our own
    page: an allowed Origin (or Referer), and the CSRF token only our page can read. WebSockets (a cross-site
    socket carries the cookie too) need the Origin."""
    unsafe = isinstance(conn, WebSocket) or conn.scope.get("method", "GET") not in SAFE_METHODS
    if not unsafe:
        return
    origin = _origin_of(conn)
    problem = None
    if origin is None:
        problem = "a cookie-authenticated request must send an Origin or Referer header"
    elif origin not in runtime.settings.trusted_origins:
        problem = f"origin {origin} is not allowed to act with this session"
    elif not isinstance(conn, WebSocket) and not csrf_matches(session_token, conn.headers.get(CSRF_HEADER)):
        problem = (
            f"missing or wrong CSRF token: send the {CSRF_HEADER} header with the token from GET /auth/me "
            f"(also in the {CSRF_COOKIE} cookie)"
        )
    if problem:
        await audit.record_now(
            runtime.engine, "csrf", outcome="denied", client=client_info(conn), details={"reason": problem[:120]}
        )
        await deny(conn, status.HTTP_403_FORBIDDEN, problem)


async def get_current_user(conn: HTTPConnection, runtime: RuntimeDep) -> User:
    """The caller, from an API key in the Authorization header, or the browser's `nexus_session` cookie (state
    changes then need the CSRF token and an allowed Origin). A WebSocket may instead pass a single-use
    `?ticket=` from `POST /api/ws-ticket`, or, for non-browser clients, `?token=`. Query strings never reach a
    log (api/access_log.py)."""
    token = bearer_token(conn)
    is_ws = isinstance(conn, WebSocket)
    ticket = conn.query_params.get("ticket") if is_ws and token is None else None
    if token is None and is_ws and ticket is None:
        token = conn.query_params.get("token") or None
    cookie = conn.cookies.get(SESSION_COOKIE) if token is None and ticket is None else None
    if cookie:
        return await _session_user(conn, runtime, cookie)
    if token is None and ticket is None:
        await deny(
            conn,
            status.HTTP_401_UNAUTHORIZED,
            "missing credentials: send `Authorization: Bearer <api key>` or sign in (POST /auth/session)",
        )
    # Failed keys are counted per address and per key (its visible prefix): guessing from many addresses at one
    # key is limited too. Only failures are limited: a right key always works (its 256-bit secret cannot be
    # guessed), so nobody who learns a key's prefix, or shares its holder's address, can lock the holder out.
    failures = [f"apikey-fail:ip:{client_info(conn).ip}", f"apikey-fail:key:{key_prefix(token or '')}"]
    limit = runtime.settings.auth_rate_limit_per_minute
    # Its own short transaction: the key's last-use stamp is committed at once, never held by a long request.
    async with session_scope(runtime.engine) as session:
        user = await (redeem_ws_ticket(session, ticket) if ticket else authenticate_api_key(session, token or ""))
        wait = None if ticket or user is not None else await ratelimit.blocked(session, failures, limit)
    if wait is not None:
        await _too_many(conn, runtime, "apikey", wait)
    if user is None:
        if not ticket:
            prefix = key_prefix(token or "")
            await ratelimit.hit(runtime.engine, failures, limit)
            await audit.record_now(
                runtime.engine,
                "apikey.auth",
                target_type="api_key",
                target_id=prefix,
                outcome="failure",
                client=client_info(conn),
            )
        await deny(
            conn,
            status.HTTP_401_UNAUTHORIZED,
            "invalid, expired or used ticket" if ticket else "invalid or revoked API key",
        )
    return user


async def _session_user(conn: HTTPConnection, runtime: Runtime, token: str) -> User:
    async with session_scope(runtime.engine) as session:
        found = await authenticate_session(session, token)
    if found is None:
        await deny(conn, status.HTTP_401_UNAUTHORIZED, "session expired or signed out: sign in again")
    await _check_csrf(conn, runtime, token)
    conn.state.session_token = token
    conn.state.session_id = found[1].id
    return found[0]


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    """The one rule for operator routes (bulk retry, codec, re-embedding status): the `admin` role."""
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin role (nexus users create --admin)")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


async def get_temporal(runtime: RuntimeDep) -> Client:
    try:
        return await runtime.temporal()
    except Exception as exc:
        raise Unavailable("Temporal", str(exc) or type(exc).__name__) from exc


TemporalDep = Annotated[Client, Depends(get_temporal)]


def resource(model: type[OwnedModel], param: str, what: str, action: Action) -> Callable[..., Awaitable[Any]]:
    """A dependency that loads `model` by the path parameter `param` if the caller may `action` it, else 404."""

    async def dependency(
        conn: HTTPConnection, user: User, session: AsyncSession, runtime: Runtime, **path: uuid.UUID
    ) -> Any:
        found = await authorize(session, model, user.id, path[param], action)
        if found is None:
            if await session.get(model, path[param]) is not None:  # it exists: someone else's. Worth an alert.
                await audit.record_now(
                    runtime.engine,
                    "authz.denied",
                    user_id=user.id,
                    target_type=str(model.__tablename__),
                    target_id=str(path[param]),
                    outcome="denied",
                    client=client_info(conn),
                    details={"action": action.value},
                )
            await deny(conn, status.HTTP_404_NOT_FOUND, f"no such {what}")
        return found

    kw = inspect.Parameter.KEYWORD_ONLY
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("conn", kw, annotation=HTTPConnection),
            inspect.Parameter("user", kw, annotation=CurrentUser),
            inspect.Parameter("session", kw, annotation=SessionDep),
            inspect.Parameter("runtime", kw, annotation=RuntimeDep),
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
WritableTurn = Annotated[ChatTurn, Depends(resource(ChatTurn, "turn_id", "chat turn", Action.write))]
ReadableConversation = Annotated[
    Conversation, Depends(resource(Conversation, "conversation_id", "conversation", Action.read))
]
WritableConversation = Annotated[
    Conversation, Depends(resource(Conversation, "conversation_id", "conversation", Action.write))
]
ReadablePersona = Annotated[Persona, Depends(resource(Persona, "persona_id", "persona", Action.read))]
WritablePersona = Annotated[Persona, Depends(resource(Persona, "persona_id", "persona", Action.write))]
ReadableIntegration = Annotated[
    Integration, Depends(resource(Integration, "integration_id", "integration", Action.read))
]
WritableIntegration = Annotated[
    Integration, Depends(resource(Integration, "integration_id", "integration", Action.write))
]
