"""Connections to outside accounts (Google, Spotify) whose credentials Nexus uses on the user's behalf."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from models.base import OwnedModel
from nexus.core.crypto import EncryptedSecret, Sealed


class IntegrationStatus(enum.StrEnum):
    active = "active"
    degraded = "degraded"  # refreshes fail for a passing reason (429, 5xx, timeouts); the workflow keeps trying
    needs_reauth = "needs_reauth"  # the provider refused the grant: only the user reconnecting helps
    revoked = "revoked"  # disconnected by the user


class Integration(OwnedModel, table=True):
    """One connected account. Tokens are sealed (`nexus.core.crypto`) with the row's id as associated data, and
    `version` is bumped on every token write so two refreshes can never overwrite each other's rotation."""

    __tablename__ = "integrations"
    __table_args__ = (sa.UniqueConstraint("owner_id", "provider", "account_id"),)

    provider: str = Field(max_length=32, index=True)
    account_id: str = Field(max_length=255)
    account_email: str | None = Field(default=None, max_length=320)
    scopes: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    status: IntegrationStatus = Field(
        default=IntegrationStatus.active, sa_column=sa.Column(sa.String(16), nullable=False, index=True)
    )
    access_token: Sealed | None = Field(default=None, sa_column=sa.Column(EncryptedSecret(), nullable=True))
    refresh_token: Sealed | None = Field(default=None, sa_column=sa.Column(EncryptedSecret(), nullable=True))
    access_token_expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    refresh_token_issued_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    reauth_due_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_refreshed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_error: str | None = Field(default=None, max_length=500)
    # Days (ISO dates) on which refreshes failed for a passing reason since the last success.
    failure_days: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    version: int = Field(default=1, nullable=False)
    # A refresh in flight holds this lease, so a second one waits for its outcome instead of spending the same
    # refresh token (with rotation, the provider would refuse one of them). Not a database lock: no transaction
    # stays open across the provider's HTTP call.
    refreshing_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
