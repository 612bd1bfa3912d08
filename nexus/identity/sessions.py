"""Browser sessions: server-side rows behind the `nexus_session` cookie, with idle and absolute lifetimes.

The cookie holds a random token; the table holds its SHA-256 digest, so a database read leaks no usable session.
The CSRF token is derived from the session token (an HMAC), so it needs no storage, changes with every session
and cannot be planted by a sibling subdomain that can only set cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import Session, User
from models.base import utcnow
from nexus.core.settings import get_settings
from nexus.identity.audit import ClientInfo, record
from nexus.identity.service import digest

SESSION_PREFIX = "nxs_"
SEEN_RESOLUTION = timedelta(minutes=1)


def csrf_token_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"nexus-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token_for(session_token), presented or "")


async def create_session(
    session: AsyncSession,
    user: User,
    client: ClientInfo,
    *,
    replaces: str | None = None,
    method: str,
    api_key_id: uuid.UUID | None = None,
) -> str:
    """A new session for `user`; the token is returned once (for the cookie). Signing in rotates: the browser's
    previous session, if any, ends here, so a session fixed before sign-in is worthless after it."""
    settings = get_settings()
    if replaces:
        await session.execute(delete(Session).where(col(Session.token_hash) == digest(replaces)))
    now = utcnow()
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = Session(
        user_id=user.id,
        token_hash=digest(token),
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
        last_seen_at=now,
        user_agent=(client.user_agent or "")[:400] or None,
        ip=client.ip,
        api_key_id=api_key_id,
    )
    session.add(row)
    record(
        session,
        "signin",
        user_id=user.id,
        target_type="session",
        target_id=str(row.id),
        client=client,
        details={"method": method},
    )
    await session.flush()
    return token


def _idle_limit() -> timedelta:
    return timedelta(minutes=get_settings().session_idle_minutes)


async def authenticate_session(session: AsyncSession, token: str) -> tuple[User, Session] | None:
    """The live session's user; expired (idle or absolute) sessions are deleted as they are met."""
    if not token.startswith(SESSION_PREFIX):
        return None
    row = (
        await session.execute(
            select(Session, User)
            .join(User, col(User.id) == Session.user_id)
            .where(col(Session.token_hash) == digest(token))
        )
    ).one_or_none()
    if row is None:
        return None
    found, user = row
    now = utcnow()
    if found.expires_at <= now or found.last_seen_at + _idle_limit() <= now or not user.is_active:
        await session.execute(delete(Session).where(col(Session.id) == found.id))
        return None
    if now - found.last_seen_at > SEEN_RESOLUTION:
        await session.execute(
            update(Session)
            .where(col(Session.id) == found.id, col(Session.last_seen_at) < now - SEEN_RESOLUTION)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
    return user, found


async def end_session(session: AsyncSession, token: str, client: ClientInfo) -> bool:
    ended = (
        await session.execute(
            delete(Session)
            .where(col(Session.token_hash) == digest(token))
            .returning(col(Session.id), col(Session.user_id))
        )
    ).one_or_none()
    if ended is None:
        return False
    record(session, "signout", user_id=ended[1], target_type="session", target_id=str(ended[0]), client=client)
    return True


async def list_sessions(session: AsyncSession, user: User) -> list[Session]:
    now = utcnow()
    rows = (
        await session.execute(
            select(Session)
            .where(col(Session.user_id) == user.id, col(Session.expires_at) > now)
            .where(col(Session.last_seen_at) > now - _idle_limit())
            .order_by(col(Session.last_seen_at).desc())
        )
    ).scalars()
    return list(rows)


async def revoke_session(session: AsyncSession, user: User, session_id: uuid.UUID, client: ClientInfo) -> bool:
    gone = (
        await session.execute(
            delete(Session)
            .where(col(Session.id) == session_id, col(Session.user_id) == user.id)
            .returning(col(Session.id))
        )
    ).scalar_one_or_none()
    if gone is not None:
        record(session, "session.revoke", user_id=user.id, target_type="session", target_id=str(gone), client=client)
    return gone is not None
