"""Chat: a turn streams its answer over SSE; conversations, personas and memories are the caller's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from api.deps import (
    CurrentUser,
    ReadableConversation,
    ReadablePersona,
    ReadableTurn,
    RuntimeDep,
    SessionDep,
    TemporalDep,
    WritableConversation,
    WritablePersona,
    WritableTurn,
)
from models import Conversation, Message, Persona
from nexus.chat.contracts import ChainMode
from nexus.chat.service import open_turn, start_turn, turn_events
from nexus.core.temporal import cancel
from nexus.identity.access import Action, authorize, permitted
from nexus.identity.service import personal_workspace
from nexus.llm.service import configured_providers

router = APIRouter(prefix="/api", tags=["chat"])


class ChatRequest(BaseModel):
    conversation_id: uuid.UUID | None = None
    message: str = Field(max_length=8000)
    persona_id: uuid.UUID | None = Field(
        default=None, description="the conversation's persona from now on; null: the default voice; omitted: unchanged"
    )
    media_ids: list[uuid.UUID] | None = Field(default=None, description="restrict retrieval to these media items")
    providers: list[str] | None = Field(default=None, max_length=4, description="gemini, openai, extractive")
    mode: ChainMode = ChainMode.sequential


class ConversationOut(BaseModel):
    id: uuid.UUID
    title: str | None
    persona_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    role: str
    content: str
    citations: list[dict[str, Any]]
    provider_results: list[dict[str, Any]] | None = Field(
        description="each provider's answer when several ran: [{provider, model, content}]"
    )
    provider: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    created_at: datetime


class PersonaIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    instruction: str = Field(min_length=1, max_length=8000)


class PersonaOut(PersonaIn):
    id: uuid.UUID
    created_at: datetime


class MemoryOut(BaseModel):
    id: str
    text: str
    created_at: str | None


def _sse(event: Any) -> ServerSentEvent:
    return ServerSentEvent(data={"attempt": event.attempt, **event.data}, event=event.kind, id=str(event.seq))


class StartedTurn(BaseModel):
    turn_id: uuid.UUID
    conversation_id: uuid.UUID
    workflow_id: str


async def start_chat_turn(
    body: ChatRequest, user: CurrentUser, session: SessionDep, client: TemporalDep, runtime: RuntimeDep
) -> StartedTurn:
    """Validate, store the user's message and start the workflow, all before the stream opens, so every
    problem is an ordinary 4xx/5xx response rather than a broken stream."""
    text = body.message.strip()
    if not text:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the message is empty")
    available = configured_providers(runtime.settings)
    providers = body.providers or available[:1]
    unknown = [p for p in providers if p not in available]
    if unknown:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"provider(s) not configured: {', '.join(unknown)}; available: {', '.join(available)}",
        )
    persona = await authorize(session, Persona, user.id, body.persona_id) if body.persona_id else None
    if body.persona_id and persona is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such persona")
    if body.conversation_id:
        conversation = await authorize(session, Conversation, user.id, body.conversation_id, Action.write)
        if conversation is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such conversation")
        if persona:
            conversation.persona_id = persona.id
        elif "persona_id" in body.model_fields_set:  # an explicit null: back to the default voice
            conversation.persona_id = None
    else:
        workspace = await personal_workspace(session, user)
        conversation = Conversation(
            owner_id=user.id, workspace_id=workspace.id, title=text[:80], persona_id=persona.id if persona else None
        )
        session.add(conversation)
        await session.flush()
    try:
        turn, message = await open_turn(session, user, conversation, text)
        await session.commit()
    except IntegrityError as exc:  # two turns raced for the same number in one conversation
        await session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, "another message to this conversation is being started; send again"
        ) from exc
    try:
        await start_turn(client, runtime, turn, text, providers, body.mode, body.media_ids)
    except Exception as exc:
        await session.delete(turn)
        await session.delete(message)
        if not body.conversation_id:
            await session.delete(conversation)
        await session.commit()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"could not start the turn: {exc}") from exc
    started = StartedTurn(turn_id=turn.id, conversation_id=conversation.id, workflow_id=turn.workflow_id)
    await session.close()  # the stream polls with short sessions of its own
    return started


@router.post("/chat", response_class=EventSourceResponse)
async def chat(
    started: Annotated[StartedTurn, Depends(start_chat_turn)], runtime: RuntimeDep
) -> AsyncIterator[ServerSentEvent]:
    """Starts a turn and streams it: `turn` (ids to reconnect with), `token`s, maybe `reset` (a retried
    generation restarts), then `final` (stored message id, citations) or `error`. Disconnecting does not
    cancel the turn; `GET /api/chat/{turn_id}/events` replays it."""
    yield ServerSentEvent(data=started.model_dump(mode="json"), event="turn")
    async for event in turn_events(runtime.engine, started.turn_id):
        yield _sse(event)


@router.get("/chat/{turn_id}/events", response_class=EventSourceResponse)
async def replay_turn(turn: ReadableTurn, runtime: RuntimeDep) -> AsyncIterator[ServerSentEvent]:
    """Every event of the turn from the start (then live ones until it ends)."""
    async for event in turn_events(runtime.engine, turn.id):
        yield _sse(event)


@router.post("/chat/{turn_id}/stop", status_code=status.HTTP_202_ACCEPTED)
async def stop_turn(turn: WritableTurn, client: TemporalDep) -> StartedTurn:
    """Stop a turn that is still answering: its generation is cancelled, nothing is stored, and its stream
    ends with an `error` event ("stopped by the user"). 409 when its answer has ended: once stored, the answer is
    kept (the run may still be remembering what was said, which a stop must not cut short)."""
    if turn.assistant_message_id is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the answer has already ended: there is nothing to stop")
    if not await cancel(client, turn.workflow_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"the turn is not running (status: {turn.status})")
    return StartedTurn(turn_id=turn.id, conversation_id=turn.conversation_id, workflow_id=turn.workflow_id)


@router.get("/conversations")
async def list_conversations(user: CurrentUser, session: SessionDep) -> list[ConversationOut]:
    rows = await session.execute(
        permitted(Conversation, user.id).order_by(col(Conversation.updated_at).desc()).limit(200)
    )
    return [ConversationOut.model_validate(c, from_attributes=True) for c in rows.scalars()]


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(conversation: ReadableConversation, session: SessionDep) -> list[MessageOut]:
    rows = await session.execute(
        select(Message).where(col(Message.conversation_id) == conversation.id).order_by(col(Message.created_at))
    )
    return [MessageOut.model_validate(m, from_attributes=True) for m in rows.scalars()]


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation: WritableConversation, session: SessionDep) -> None:
    await session.delete(conversation)


@router.get("/personas")
async def list_personas(user: CurrentUser, session: SessionDep) -> list[PersonaOut]:
    rows = await session.execute(permitted(Persona, user.id).order_by(col(Persona.created_at)))
    return [PersonaOut.model_validate(p, from_attributes=True) for p in rows.scalars()]


@router.post("/personas", status_code=status.HTTP_201_CREATED)
async def create_persona(body: PersonaIn, user: CurrentUser, session: SessionDep) -> PersonaOut:
    workspace = await personal_workspace(session, user)
    persona = Persona(owner_id=user.id, workspace_id=workspace.id, **body.model_dump())
    session.add(persona)
    await session.flush()
    return PersonaOut.model_validate(persona, from_attributes=True)


@router.get("/personas/{persona_id}")
async def get_persona(persona: ReadablePersona) -> PersonaOut:
    return PersonaOut.model_validate(persona, from_attributes=True)


@router.put("/personas/{persona_id}")
async def update_persona(body: PersonaIn, persona: WritablePersona, session: SessionDep) -> PersonaOut:
    persona.name, persona.instruction = body.name, body.instruction
    await session.flush()
    return PersonaOut.model_validate(persona, from_attributes=True)


@router.delete("/personas/{persona_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_persona(persona: WritablePersona, session: SessionDep) -> None:
    await session.delete(persona)


@router.get("/memories")
async def list_memories(
    user: CurrentUser,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many (Mem0 lists them unordered)")] = 100,
) -> list[MemoryOut]:
    """What Nexus remembers about you."""
    found = await runtime.memory.list(user.id, limit=limit)
    return [MemoryOut(id=m.id, text=m.text, created_at=m.created_at) for m in found]


@router.delete("/memories/{memory_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(memory_id: str, user: CurrentUser, runtime: RuntimeDep) -> None:
    if not await runtime.memory.delete(user.id, memory_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such memory")
