"""A chat turn's work: gather context, stream the answer from one or more providers, store it exactly once.

Tokens go to the `turn_events` table as they are produced, so any API process can stream them to the client.
A retried generation (`attempt > 1`) first writes a `reset` event: clients drop the partial text and follow the
new attempt. Activities wrap these functions; nothing here knows about Temporal.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from models import ChatTurn, Conversation, Message, Persona, TurnEvent
from models.base import utcnow
from nexus.chat.contracts import (
    ChainMode,
    ContextInput,
    FinishTurn,
    GenerateInput,
    GenerateResult,
    RememberInput,
    TurnContext,
)
from nexus.core.db import outlasting_outages, session_scope
from nexus.core.errors import BadInput
from nexus.core.eventlog import append
from nexus.llm.providers import ChatContext, LLMProvider, Passage, ProviderError, Usage
from nexus.llm.service import make_provider
from nexus.runtime import Runtime
from nexus.search.service import SearchFilters, search

FLUSH_S = 0.05
HISTORY_MESSAGES = 10
T = TypeVar("T")
CONTEXT_PASSAGES = 5


_DASHES = "\\-\u2013"  # hyphen (escaped: it sits in character classes), en dash
_CITATION = re.compile(rf"\[(\d+(?:\s*[,;{_DASHES}]\s*\d+)*)\]")


def cited_numbers(answer: str) -> set[int]:
    """Passage numbers an answer cites, as models write them: [2], [1, 3], [1; 3], [2-4] (a range)."""
    found: set[int] = set()
    for group in _CITATION.findall(answer):
        for part in re.split(r"\s*[,;]\s*", group):
            bounds = [int(n) for n in re.split(rf"\s*[{_DASHES}]\s*", part)]
            start, end = bounds[0], bounds[-1]
            if 0 <= end - start <= 50:  # "[1-1000]" is not a citation worth expanding
                found.update(range(start, end + 1))
    return found


def citations_for(answer: str, passages: list[Passage]) -> list[dict[str, Any]]:
    """Passages the answer cites as [n]; when it cites none explicitly, every passage it was given."""
    numbers = cited_numbers(answer)
    given = list(enumerate(passages, start=1))
    cited = [(n, p) for n, p in given if n in numbers] or given
    return [
        {
            "n": n,  # the answer's [n]: a client labels the source with it, not with its place in this list
            "media_id": p.media_id,
            "title": p.title,
            "start": p.start,
            "end": p.end,
            "at": p.at if p.at is not None else p.start,
            "speaker": p.speaker,
            "snippet": p.text[:300],
        }
        for n, p in cited
    ]


async def _event(rt: Runtime, turn_id: uuid.UUID, kind: str, data: dict[str, Any], attempt: int = 1) -> None:
    async with session_scope(rt.engine) as session:
        # `seq` is drawn by the database (an identity column); SQLModel's Field cannot mark it init=False.
        event = TurnEvent(turn_id=turn_id, kind=kind, attempt=attempt, data=data)  # type: ignore[call-arg]
        await append(session, turn_id, event)


async def context(rt: Runtime, inp: ContextInput) -> TurnContext:
    """Memories, then passages: one embedding of the question (cached), no CPU contention between two
    concurrent model calls on a small machine."""
    memories = [m.text for m in await rt.memory.search(inp.user_id, inp.query)]
    async with session_scope(rt.engine) as session:
        hits = await search(
            session,
            rt.embedder_for,
            inp.user_id,
            inp.query,
            limit=CONTEXT_PASSAGES,
            filters=SearchFilters(media_ids=inp.media_ids),
        )
    passages = [
        Passage(
            media_id=str(h.media_id),
            title=h.title,
            start=h.start_s,
            end=h.end_s,
            text=h.text,
            at=h.at_s,
            speaker=h.speaker,
        )
        for h in hits
    ]
    return TurnContext(memories=memories, passages=passages)


async def remember(rt: Runtime, inp: RememberInput) -> int:
    return await rt.memory.add(
        inp.user_id, inp.text, {"conversation_id": str(inp.conversation_id), "turn_id": str(inp.turn_id)}
    )


async def finish(rt: Runtime, inp: FinishTurn) -> None:
    async with session_scope(rt.engine) as session:
        turn = (
            await session.execute(select(ChatTurn).where(col(ChatTurn.id) == inp.turn_id).with_for_update())
        ).scalar_one_or_none()
        if turn is None:
            return  # the conversation was deleted meanwhile: nothing left to mark
        if inp.status in ("failed", "cancelled") and turn.status != "running":
            return  # its answer was stored in the instant before the stop: the turn ended answered, as streamed
        await session.execute(
            update(ChatTurn).where(col(ChatTurn.id) == inp.turn_id).values(status=inp.status, error=inp.error)
        )
        if inp.status in ("failed", "cancelled"):
            # `seq` is drawn by the database (an identity column); SQLModel's Field cannot mark it init=False.
            event = TurnEvent(turn_id=inp.turn_id, kind="error", data={"message": inp.error})  # type: ignore[call-arg]
            await append(session, inp.turn_id, event)


async def generate(rt: Runtime, inp: GenerateInput, attempt: int) -> GenerateResult:
    """Stream the answer into turn events and store it once (the turn's unique key settles a race)."""
    async with session_scope(rt.engine) as session:
        turn = await session.get(ChatTurn, inp.turn_id)
        if turn is None:
            raise BadInput("the conversation was deleted")
        existing = (await session.execute(select(Message).where(col(Message.turn_id) == turn.id))).scalar_one_or_none()
        conversation = await session.get(Conversation, turn.conversation_id)
        assert conversation is not None
        persona = await session.get(Persona, conversation.persona_id) if conversation.persona_id else None
        history = (
            await session.execute(
                select(col(Message.role), col(Message.content))
                .where(col(Message.conversation_id) == conversation.id, col(Message.id) != turn.user_message_id)
                .order_by(col(Message.created_at).desc())
                .limit(HISTORY_MESSAGES)
            )
        ).all()
    if existing is not None:  # an earlier attempt stored the answer, then died before reporting back
        return GenerateResult(message_id=existing.id, reused=True)
    if attempt > 1:
        await _event(rt, turn.id, "reset", {"reason": f"retrying (attempt {attempt}); the answer restarts"}, attempt)

    ctx = ChatContext(
        question=inp.question,
        instruction=persona.instruction if persona else None,
        memories=inp.memories,
        passages=inp.passages,
        history=[{"role": r, "content": c} for r, c in reversed(history)],
    )
    try:
        providers = [make_provider(name, rt.settings, rt.embedder) for name in inp.providers]
    except ProviderError as exc:
        raise BadInput(str(exc)) from exc

    finished = await _finished_parts(rt, turn.id) if attempt > 1 else {}

    async def part(index: int, provider: LLMProvider, ctx: ChatContext) -> tuple[LLMProvider, str, Usage]:
        """One provider's answer: streamed, or, on a retry, the one an earlier attempt finished (not paid twice:
        the first of a chain whose second failed, or the providers of a parallel turn that had answered)."""
        done = finished.get(index)
        if done is not None and done["provider"] == provider.name:
            await _event(rt, turn.id, "token", {"text": done["text"], "provider": provider.name}, attempt)
            return provider, done["text"], Usage.model_validate(done.get("usage") or {})
        result = await _stream(rt, turn.id, provider, ctx, attempt)
        _, text, usage = result
        await _event(
            rt,
            turn.id,
            "part",
            {"index": index, "provider": provider.name, "text": text, "usage": usage.model_dump()},
            attempt,
        )
        return result

    started = time.perf_counter()
    if inp.mode is ChainMode.parallel and len(providers) > 1:
        results = await _all_or_none([part(i, p, ctx) for i, p in enumerate(providers)])
    else:
        results = []
        for i, provider in enumerate(providers):
            results.append(await part(i, provider, ctx))
            ctx = ctx.model_copy(update={"draft": results[-1][1]})
    latency_ms = int((time.perf_counter() - started) * 1000)

    if inp.mode is ChainMode.parallel and len(results) > 1:
        content = "\n\n".join(f"**{p.name}** ({p.model}):\n{text}" for p, text, _ in results)
    else:
        content = results[-1][1]
    last, _, usage = results[-1]
    message = Message(
        conversation_id=turn.conversation_id,
        owner_id=turn.owner_id,
        turn_id=turn.id,
        role="assistant",
        content=content,
        citations=citations_for(content, inp.passages),
        provider_results=[{"provider": p.name, "model": p.model, "content": text} for p, text, _ in results],
        provider=",".join(p.name for p, _, _ in results),
        model=last.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=latency_ms,
    )

    @outlasting_outages  # the answer is paid for: wait out a database restart rather than lose it
    async def store() -> None:
        async with session_scope(rt.engine) as session:
            # A stop cancels the run at once, but this attempt hears of it only at its next heartbeat: an answer
            # that ended in between must not be stored for a turn already ended as stopped (or failed).
            status = (
                await session.execute(select(col(ChatTurn.status)).where(col(ChatTurn.id) == turn.id).with_for_update())
            ).scalar_one_or_none()
            if status != "running":
                raise BadInput(f"the turn ended ({status or 'deleted'}) before its answer was stored")
            session.add(message)
            await session.flush()
            await session.execute(
                update(ChatTurn)
                .where(col(ChatTurn.id) == turn.id)
                .values(assistant_message_id=message.id, status="answered")
            )
            await session.execute(
                update(Conversation).where(col(Conversation.id) == turn.conversation_id).values(updated_at=utcnow())
            )
            await append(
                session,
                turn.id,
                TurnEvent(  # type: ignore[call-arg]  # `seq` is drawn by the database (identity column)
                    turn_id=turn.id,
                    kind="final",
                    attempt=attempt,
                    data={
                        "message_id": str(message.id),
                        "content": content,
                        "citations": message.citations,
                        "results": message.provider_results,
                        "provider": message.provider,
                        "model": message.model,
                    },
                ),
            )

    try:
        await store()
    except IntegrityError:  # a racing attempt stored it first: exactly one answer either way
        async with session_scope(rt.engine) as session:
            stored = (
                await session.execute(select(col(Message.id)).where(col(Message.turn_id) == turn.id))
            ).scalar_one()
        return GenerateResult(message_id=stored, reused=True)
    return GenerateResult(message_id=message.id, reused=False)


async def _finished_parts(rt: Runtime, turn_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    """The providers' answers earlier attempts of this turn finished (`part` events), by place in the chain."""
    async with session_scope(rt.engine) as session:
        events = await session.execute(
            select(TurnEvent).where(col(TurnEvent.turn_id) == turn_id, col(TurnEvent.kind) == "part")
        )
        return {int(e.data["index"]): e.data for e in events.scalars()}


async def _all_or_none(streams: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every stream's result, or the first failure with the others cancelled. (`gather` alone left them running,
    unwatched: a paid model call went on writing tokens of a failed attempt into the retry's stream.)"""
    tasks = [asyncio.ensure_future(stream) for stream in streams]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _stream(
    rt: Runtime, turn_id: uuid.UUID, provider: LLMProvider, ctx: ChatContext, attempt: int
) -> tuple[LLMProvider, str, Usage]:
    """Stream one provider's answer into turn events, flushing every 50 ms."""
    usage = Usage()
    pieces: list[str] = []
    buffer: list[str] = []
    last_flush = time.perf_counter()

    async def flush() -> None:
        nonlocal last_flush
        if buffer:
            await _event(rt, turn_id, "token", {"text": "".join(buffer), "provider": provider.name}, attempt)
            buffer.clear()
        last_flush = time.perf_counter()

    async for piece in provider.stream_answer(ctx, usage):
        pieces.append(piece)
        buffer.append(piece)
        if time.perf_counter() - last_flush >= FLUSH_S:
            await flush()
    await flush()
    return provider, "".join(pieces), usage
