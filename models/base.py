"""Conventions every table follows.

Every row carries an id and timestamps; every user-visible row is *owned*: `owner_id` (the user who created it)
and, where shared, `workspace_id`. Queries for user data go through `nexus.identity.access`, never a bare select.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class TimestampedModel(SQLModel):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


class OwnedModel(TimestampedModel):
    """A row that belongs to one user (and optionally a workspace they are a member of)."""

    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, nullable=False, ondelete="CASCADE")
    workspace_id: uuid.UUID | None = Field(
        default=None, foreign_key="workspaces.id", index=True, nullable=True, ondelete="CASCADE"
    )
