"""Inputs and outputs of the chat turn workflow and its activities."""

from __future__ import annotations

import enum
import uuid

from pydantic import BaseModel, Field

from nexus.core.orchestration import TaskQueues
from nexus.llm.providers import Passage


class ChainMode(enum.StrEnum):
    sequential = "sequential"  # each provider improves the previous one's answer
    parallel = "parallel"  # all providers answer at once; every result is kept


class ChatTurnInput(BaseModel):
    turn_id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    question: str
    providers: list[str]
    mode: ChainMode = ChainMode.sequential
    media_ids: list[uuid.UUID] | None = None
    queues: TaskQueues


class ContextInput(BaseModel):
    user_id: uuid.UUID
    query: str
    media_ids: list[uuid.UUID] | None = None


class TurnContext(BaseModel):
    """What the model gets besides the question: the user's memories and the best passages of their archive."""

    memories: list[str] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)


class GenerateInput(BaseModel):
    turn_id: uuid.UUID
    question: str
    memories: list[str] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    providers: list[str]
    mode: ChainMode


class GenerateResult(BaseModel):
    message_id: uuid.UUID
    reused: bool


class RememberInput(BaseModel):
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    turn_id: uuid.UUID
    text: str


class FinishTurn(BaseModel):
    turn_id: uuid.UUID
    status: str
    error: str | None = None
