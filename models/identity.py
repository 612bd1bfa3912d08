"""Users, credentials, sessions, workspaces and the audit trail."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import TimestampedModel, utcnow
from nexus.core.crypto import EncryptedSecret, Sealed


class Role(enum.StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"


class User(TimestampedModel, table=True):
    __tablename__ = "users"

    email: str = Field(sa_column=sa.Column(sa.String(320), unique=True, nullable=False))
    name: str | None = Field(default=None, max_length=255)
    is_admin: bool = Field(default=False, nullable=False)
    is_active: bool = Field(default=True, nullable=False)


class ApiKey(TimestampedModel, table=True):
    """A bearer credential. Only a SHA-256 digest is stored; `prefix` is shown to users to tell keys apart."""

    __tablename__ = "api_keys"

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")
    name: str = Field(default="default", max_length=100)
    prefix: str = Field(sa_column=sa.Column(sa.String(32), unique=True, nullable=False))
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Session(TimestampedModel, table=True):
    """A browser session behind the `nexus_session` cookie. Only a digest of the token is stored; `expires_at` is
    the absolute end, `last_seen_at` + the idle lifetime the other."""

    __tablename__ = "sessions"

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
    user_agent: str | None = Field(default=None, max_length=400)
    ip: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    # The key a session was opened with (`POST /auth/session`): revoking the key ends the session too.
    api_key_id: uuid.UUID | None = Field(default=None, foreign_key="api_keys.id", index=True, ondelete="CASCADE")


class UserIdentity(TimestampedModel, table=True):
    """A sign-in identity at an OpenID Connect provider, linked to one user by the provider's subject."""

    __tablename__ = "user_identities"
    __table_args__ = (sa.UniqueConstraint("provider", "subject"),)

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")
    provider: str = Field(max_length=32)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=320)


class OAuthState(TimestampedModel, table=True):
    """One authorization request in flight, kept server-side (not in a signed cookie, which is where Authlib's
    state goes missing): single use, short-lived, and bound to the browser that started it."""

    __tablename__ = "oauth_states"

    state_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    browser_hash: str = Field(max_length=64)
    purpose: str = Field(max_length=16)  # "signin" or "connect"
    provider: str = Field(max_length=32)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    nonce: str | None = Field(default=None, max_length=128)
    code_verifier: Sealed = Field(sa_column=sa.Column(EncryptedSecret(), nullable=False))
    redirect_to: str | None = Field(default=None, max_length=2000)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False, index=True)


class RateLimitHit(SQLModel, table=True):
    """Attempts per key and fixed one-minute window, shared by every API process."""

    __tablename__ = "rate_limits"

    key: str = Field(primary_key=True, max_length=200)
    window_start: datetime = Field(primary_key=True, sa_type=sa.DateTime(timezone=True))
    count: int = Field(default=0, nullable=False)


class WsTicket(TimestampedModel, table=True):
    """A single-use, short-lived credential for opening one WebSocket: browsers cannot set headers on a
    WebSocket, and a long-lived API key in a URL ends up in proxies' logs and browser history."""

    __tablename__ = "ws_tickets"

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class Workspace(TimestampedModel, table=True):
    __tablename__ = "workspaces"

    name: str = Field(max_length=200)
    slug: str = Field(sa_column=sa.Column(sa.String(100), unique=True, nullable=False))
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")


class WorkspaceMember(TimestampedModel, table=True):
    __tablename__ = "workspace_members"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "user_id"),)

    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    role: Role = Field(sa_column=sa.Column(sa.String(16), nullable=False))


class AuditLog(TimestampedModel, table=True):
    """Who did what. Holds ids and action names only, never secrets or content."""

    __tablename__ = "audit_log"

    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", index=True, ondelete="SET NULL")
    workspace_id: uuid.UUID | None = Field(default=None, foreign_key="workspaces.id", index=True, ondelete="SET NULL")
    action: str = Field(max_length=100, index=True)
    target_type: str | None = Field(default=None, max_length=50)
    target_id: str | None = Field(default=None, max_length=100)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    outcome: str = Field(default="success", max_length=16)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)


class Vocabulary(SQLModel, table=True):
    """A user's words for transcription (names, products, jargon): passed to Whisper as hotwords."""

    __tablename__ = "vocabularies"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    terms: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
