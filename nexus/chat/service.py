"""Starting chat turns and following their events: the API's chat verbs, outside the HTTP layer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col
from temporalio.client import Client, WorkflowHandle

from models import ChatTurn, Conversation, Message, TurnEvent, User
from nexus.chat.contracts import ChainMode, ChatTurnInput
from nexus.core.eventlog import follow
from nexus.core.orchestration import CHAT_TURN_WORKFLOW, chat_turn_workflow_id
from nexus.core.temporal import ui_summary
from nexus.runtime import Runtime

TERMINAL_KINDS = {"final", "error"}


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
