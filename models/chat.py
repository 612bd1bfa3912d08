"""Conversations, messages, personas, and chat turns with their token event log (seed 004's chat schema)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from models.base import OwnedModel, TimestampedModel, utcnow


class Persona(OwnedModel, table=True):
    """A stored system instruction."""

    __tablename__ = "personas"

    name: str = Field(max_length=100)
    instruction: str = Field(sa_type=sa.Text)


class Conversation(OwnedModel, table=True):
    __tablename__ = "conversations"

    title: str | None = Field(default=None, max_length=200)
    persona_id: uuid.UUID | None = Field(default=None, foreign_key="personas.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


class Message(TimestampedModel, table=True):
    __tablename__ = "messages"

    conversation_id: uuid.UUID = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    # Set on assistant messages: the unique key that makes "persist the answer" happen exactly once per turn.
    turn_id: uuid.UUID | None = Field(default=None, unique=True)
    role: str = Field(max_length=20)
    content: str = Field(sa_type=sa.Text)
    citations: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    # Each provider's answer when several ran (sequential or parallel chains): [{provider, model, content}].
    provider_results: list[dict[str, Any]] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    provider: str | None = Field(default=None, max_length=50)
    model: str | None = Field(default=None, max_length=100)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None


class ChatTurn(OwnedModel, table=True):
    __tablename__ = "chat_turns"
    __table_args__ = (
        sa.UniqueConstraint("conversation_id", "turn"),
        sa.Index("ix_chat_turns_created_at", "created_at"),
    )

    conversation_id: uuid.UUID = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    turn: int
    workflow_id: str = Field(max_length=200)
    status: str = Field(default="running", max_length=20)
    user_message_id: uuid.UUID = Field(foreign_key="messages.id", ondelete="CASCADE")
    assistant_message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id", ondelete="SET NULL")
    error: str | None = Field(default=None, sa_type=sa.Text)


class TurnEvent(TimestampedModel, table=True):
    """Token stream of a turn, persisted so any API process can stream it and a reconnecting client can replay."""

    __tablename__ = "turn_events"
    __table_args__ = (sa.Index("ix_turn_events_created_at", "created_at"),)  # metrics and cleanup: recent events

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, sa.Identity(), unique=True, nullable=False))
    turn_id: uuid.UUID = Field(foreign_key="chat_turns.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=20)  # token | reset | final | error
    attempt: int = 1
    data: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
