"""The deployment's own records: its identity, the workers serving it, and Mem0's history.

None of these rows belong to a user. `deployment` and `worker_registrations` describe the machines; Mem0's history
and recent messages are keyed by memory id and session scope (the user id inside Mem0's scope), and are reached
only through `nexus.memory`, which always passes the user's id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import TimestampedModel, utcnow


class Deployment(TimestampedModel, table=True):
    """One row, made by the first migration that has it: the identity every process compares (the storage marker
    holds the same id, so a host writing to a store of its own is found out)."""

    __tablename__ = "deployment"


class WorkerRegistration(SQLModel, table=True):
    """A running worker process: what it serves and the configuration it runs with (`nexus.ops.fleet`)."""

    __tablename__ = "worker_registrations"

    id: uuid.UUID = Field(primary_key=True)  # chosen by the process at start
    identity: str = Field(max_length=300, index=True)  # Temporal's poller identity (`pid@host`)
    host: str = Field(max_length=255)
    pid: int
    queues: list[str] = Field(sa_column=sa.Column(JSONB, nullable=False))
    fingerprint: dict[str, Any] = Field(sa_column=sa.Column(JSONB, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
    heartbeat_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False, index=True
    )


class MemoryHistory(SQLModel, table=True):
    """Mem0's change log of each memory (its SQLite `history` table, here so every host shares it)."""

    __tablename__ = "memory_history"

    id: str = Field(primary_key=True, max_length=64)
    memory_id: str | None = Field(default=None, max_length=64, index=True)
    old_memory: str | None = None
    new_memory: str | None = None
    event: str | None = Field(default=None, max_length=20)
    created_at: str | None = Field(default=None, max_length=64)  # Mem0's ISO strings, as it wrote them
    updated_at: str | None = Field(default=None, max_length=64)
    is_deleted: bool = Field(default=False, nullable=False)
    actor_id: str | None = Field(default=None, max_length=255)
    role: str | None = Field(default=None, max_length=50)
    # Mem0's own timestamps are strings it sometimes leaves empty (a delete has none): the order of record is this.
    recorded_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False)
    )


class MemoryMessage(SQLModel, table=True):
    """The last messages Mem0 saw per session scope (context for fact extraction; it keeps ten per scope)."""

    __tablename__ = "memory_messages"

    id: str = Field(primary_key=True, max_length=64)
    session_scope: str = Field(max_length=500, index=True)
    role: str | None = Field(default=None, max_length=50)
    content: str | None = None
    name: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


class EmbeddingModel(SQLModel, table=True):
    """A sentence-embedding model the search index has (had, or is getting) vectors from.

    Exactly one is `active`: queries and new passages use it. The first row is the model the index was built with
    before the registry existed; its digest is filled in by the first process that runs a model of that name and
    dimension (nexus.llm.registry.adopt)."""

    __tablename__ = "embedding_models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    digest: str | None = Field(default=None, max_length=64)
    dims: int
    status: str = Field(max_length=16)  # building | active | retired
    # What loads it: NEXUS_EMBEDDING_MODEL's value ("" = the shipped MiniLM; see nexus.llm.models.spec_path).
    spec: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
    activated_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    retired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # A retired model's vectors are kept until `drop_after` (switching back is a quick catch-up), then dropped.
    drop_after: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    dropped_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
