"""Users and API keys: creation, authentication, revocation, and the first-run bootstrap."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import ApiKey, Role, Session, User, Workspace, WorkspaceMember, WsTicket
from models.base import utcnow
from nexus.identity.audit import NO_CLIENT, ClientInfo, record

KEY_PREFIX = "nx_"
_PREFIX_LEN = 8  # random chars after "nx_" that stay visible
LAST_USED_RESOLUTION = timedelta(minutes=1)
WS_TICKET_PREFIX = "wst_"
WS_TICKET_TTL = timedelta(seconds=60)


class IdentityError(ValueError):
    """A request that cannot be honoured as given (duplicate email, unknown user...)."""


@dataclass(frozen=True)
class IssuedKey:
    """An API key as issued: `token` is shown once and never stored."""

    id: uuid.UUID
    prefix: str
    token: str


def digest(token: str) -> str:
    """How every bearer secret (API key, session, ticket, OAuth state) is stored: SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise IdentityError(f"not an email address: {email!r}")
    return email


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(col(User.email) == normalize_email(email)))).scalar_one_or_none()


async def create_user(session: AsyncSession, email: str, *, name: str | None = None, is_admin: bool = False) -> User:
    """Create a user with a personal workspace they own (every row needs a home)."""
    email = normalize_email(email)
    if await get_user_by_email(session, email):
        raise IdentityError(f"a user with email {email} already exists")
    user = User(email=email, name=name, is_admin=is_admin)
    session.add(user)
    await session.flush()
    workspace = Workspace(name=f"{name or email}'s workspace", slug=f"u-{user.id.hex[:12]}", owner_id=user.id)
    session.add(workspace)
    await session.flush()
    session.add(WorkspaceMember(workspace_id=workspace.id, user_id=user.id, role=Role.owner))
    record(session, "user.create", user_id=user.id, target_type="user", target_id=str(user.id))
    await session.flush()
    return user


async def issue_api_key(
    session: AsyncSession, user: User, *, name: str = "default", client: ClientInfo = NO_CLIENT
) -> IssuedKey:
    visible = KEY_PREFIX + secrets.token_hex(_PREFIX_LEN // 2)
    token = f"{visible}_{secrets.token_urlsafe(32)}"
    key = ApiKey(user_id=user.id, name=name, prefix=visible, key_hash=digest(token))
    session.add(key)
    record(session, "apikey.create", user_id=user.id, target_type="api_key", target_id=visible, client=client)
    await session.flush()
    return IssuedKey(id=key.id, prefix=visible, token=token)


def key_prefix(token: str) -> str:
    """The visible part of a key (`nx_` and 8 characters): what it is listed, looked up and rate-limited by."""
    return token[: len(KEY_PREFIX) + _PREFIX_LEN]


async def authenticate_api_key(session: AsyncSession, token: str) -> User | None:
    """The active user owning this key, or None. Constant-time comparison of the digest."""
    if not token.startswith(KEY_PREFIX) or token.count("_") < 2:
        return None
    prefix = key_prefix(token)
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, col(User.id) == ApiKey.user_id)
            .where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None), col(User.is_active).is_(True))
        )
    ).one_or_none()
    if row is None:
        return None
    key, user = row
    if not hmac.compare_digest(key.key_hash, digest(token)):
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # At most one write a minute per key; conditional, so concurrent requests do not queue on the row.
        await session.execute(
            update(ApiKey)
            .where(col(ApiKey.id) == key.id)
            .where(or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < now - LAST_USED_RESOLUTION))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return user


async def issue_ws_ticket(session: AsyncSession, user: User) -> tuple[str, datetime]:
    """A ticket that opens one WebSocket within a minute. Expired tickets are swept here, so the table stays
    as small as the number of sockets being opened right now."""
    now = utcnow()
    await session.execute(delete(WsTicket).where(col(WsTicket.expires_at) < now))
    token = WS_TICKET_PREFIX + secrets.token_urlsafe(32)
    expires = now + WS_TICKET_TTL
    session.add(WsTicket(user_id=user.id, token_hash=digest(token), expires_at=expires))
    await session.flush()
    return token, expires


async def redeem_ws_ticket(session: AsyncSession, token: str) -> User | None:
    """The ticket's user, once: the row is deleted as it is read, so a replayed ticket finds nothing."""
    if not token.startswith(WS_TICKET_PREFIX):
        return None
    user_id = (
        await session.execute(
            delete(WsTicket)
            .where(col(WsTicket.token_hash) == digest(token), col(WsTicket.expires_at) > utcnow())
            .returning(col(WsTicket.user_id))
        )
    ).scalar_one_or_none()
    if user_id is None:
        return None
    user = await session.get(User, user_id)
    return user if user is not None and user.is_active else None


async def revoke_api_key(session: AsyncSession, user: User, key_id: uuid.UUID, client: ClientInfo = NO_CLIENT) -> bool:
    key = (
        await session.execute(select(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.user_id) == user.id))
    ).scalar_one_or_none()
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record(session, "apikey.revoke", user_id=user.id, target_type="api_key", target_id=key.prefix, client=client)
    # A leaked key's holder may have opened a browser session with it: that ends with the key.
    await session.execute(delete(Session).where(col(Session.api_key_id) == key.id))
    return True


async def api_key_id(session: AsyncSession, token: str) -> uuid.UUID | None:
    """The id of the live key `token` names by its visible prefix (call after `authenticate_api_key`)."""
    prefix = key_prefix(token)
    found = await session.execute(
        select(col(ApiKey.id)).where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None))
    )
    return found.scalar_one_or_none()


async def personal_workspace(session: AsyncSession, user: User) -> Workspace:
    return (
        await session.execute(
            select(Workspace).where(col(Workspace.owner_id) == user.id).order_by(col(Workspace.created_at)).limit(1)
        )
    ).scalar_one()
