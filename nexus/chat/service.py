"""Starting chat turns and following their events: the API's chat verbs, outside the HTTP layer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from models import ChatTurn, Conversation, Message, TurnEvent, User
from models.base import utcnow
from nexus.chat.contracts import ChainMode, ChatTurnInput
from nexus.core.db import session_scope
from nexus.core.eventlog import append, follow
from nexus.core.orchestration import CHAT_TURN_WORKFLOW, chat_turn_workflow_id
from nexus.core.temporal import ended_outside, run_status, ui_summary
from nexus.runtime import Runtime

TERMINAL_KINDS = {"final", "error"}

STALE_AFTER = timedelta(minutes=2)
"""A turn still `running` this long after it was asked is checked against Temporal."""


async def open_turn(
    session: AsyncSession, user: User, conversation: Conversation, text: str
) -> tuple[ChatTurn, Message]:
    message = Message(conversation_id=conversation.id, owner_id=user.id, role="user", content=text)
    session.add(message)
    await session.flush()
    turn_no = (
        await session.execute(select(func.count()).where(col(ChatTurn.conversation_id) == conversation.id))
    ).scalar_one() + 1
    turn = ChatTurn(
        owner_id=user.id,
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        turn=turn_no,
        workflow_id=chat_turn_workflow_id(conversation.id, turn_no),
        user_message_id=message.id,
    )
    session.add(turn)
    await session.flush()
    return turn, message


async def start_turn(
    client: Client,
    runtime: Runtime,
    turn: ChatTurn,
    question: str,
    providers: list[str],
    mode: ChainMode,
    media_ids: list[uuid.UUID] | None,
) -> None:
    inp = ChatTurnInput(
        turn_id=turn.id,
        conversation_id=turn.conversation_id,
        user_id=turn.owner_id,
        question=question,
        providers=providers,
        mode=mode,
        media_ids=media_ids,
        queues=runtime.queues,
    )
    summary = ui_summary(f"Chat turn {turn.turn}: {question}")
    details = (
        f"conversation `{turn.conversation_id}` · turn `{turn.id}` · providers {', '.join(providers) or 'default'}"
    )
    await start_run(client, inp, turn.workflow_id, summary, details)


async def start_run(
    client: Client, inp: ChatTurnInput, workflow_id: str, summary: str | None = None, details: str | None = None
) -> WorkflowHandle[Any, str]:
    """Start a turn's workflow by name; it returns the stored answer's message id. The summary and details are
    what the Temporal UI shows for the run (payloads, so encrypted like the rest when the codec is on)."""
    return await client.start_workflow(
        CHAT_TURN_WORKFLOW,
        inp,
        id=workflow_id,
        task_queue=inp.queues.workflows,
        result_type=str,
        static_summary=summary,
        static_details=details,
    )


async def turn_events(engine: AsyncEngine, turn_id: uuid.UUID) -> AsyncIterator[TurnEvent]:
    async for event in follow(
        engine, TurnEvent, ChatTurn, TurnEvent.turn_id, turn_id, is_terminal=lambda e: e.kind in TERMINAL_KINDS
    ):
        yield event


async def reconcile_turn(client: Client, runtime: Runtime, turn: ChatTurn) -> str | None:
    """End a `running` turn whose run has ended without saying so, with an `error` event, so its stream and the
    stop button do not wait forever; returns the status it got, if any. Conditional on the turn still being
    `running`: a run that finishes meanwhile has said so itself, and no second error event is written."""
    status = await run_status(client, turn.workflow_id)
    if status == WorkflowExecutionStatus.RUNNING:
        return None
    if status is None:
        if utcnow() - turn.created_at < STALE_AFTER:
            return None  # just asked: the run's start may still be on its way
        ended, reason = "failed", "no run exists for this turn in Temporal; send the message again"
    elif status == WorkflowExecutionStatus.COMPLETED:
        ended, reason = "completed", ""
    else:
        cancelled, reason = ended_outside(status)
        ended = "cancelled" if cancelled else "failed"
    async with session_scope(runtime.engine) as session:
        changed = await session.execute(
            update(ChatTurn)
            .where(col(ChatTurn.id) == turn.id, col(ChatTurn.status) == "running")
            .values(status=ended, error=reason or None)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            return None
        if reason:
            # `seq` is drawn by the database (an identity column); SQLModel's Field cannot mark it init=False.
            event = TurnEvent(turn_id=turn.id, kind="error", data={"message": reason})  # type: ignore[call-arg]
            await append(session, turn.id, event)
    return ended


async def reconcile_stale_turns(client: Client, runtime: Runtime, *, limit: int = 200) -> int:
    """One reconciliation pass over turns still `running` a while after they were asked (the schedule runs it)."""
    async with session_scope(runtime.engine) as session:
        turns = (
            await session.execute(
                select(ChatTurn)
                .where(col(ChatTurn.status) == "running", col(ChatTurn.created_at) < utcnow() - STALE_AFTER)
                .order_by(col(ChatTurn.created_at))
                .limit(limit)
            )
        ).scalars()
        quiet = list(turns)
    return sum([await reconcile_turn(client, runtime, turn) is not None for turn in quiet])
