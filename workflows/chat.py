"""ChatTurnWorkflow: memory + retrieval -> streamed generation on the llm queue -> memory add.

One workflow per turn (id `chat-<conversation>-<turn>`). The HTTP request only starts it and then reads
the turn's events, so a client that disconnects does not cancel the turn.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.chat import ChatActivities
    from nexus.chat.contracts import ChatTurnInput, ContextInput, FinishTurn, GenerateInput, RememberInput
    from nexus.core.orchestration import CHAT_TURN_WORKFLOW, SA_USER_ID
    from workflows.shared import (
        CHAT_QUEUE_WAIT,
        DB_OUTAGE_BUDGET,
        DB_RETRY,
        NETWORK_RETRY,
        PROVIDER_RETRY,
        QUEUE_WAIT_CPU,
        failure_reason,
    )


@workflow.defn(name=CHAT_TURN_WORKFLOW)
class ChatTurnWorkflow:
    @workflow.run
    async def run(self, inp: ChatTurnInput) -> str:
        workflow.upsert_search_attributes([SA_USER_ID.value_set(str(inp.user_id))])
        q = inp.queues
        try:
            # A local activity: it runs in this (cpu) worker without a round trip through the server, which
            # matters on a path measured in milliseconds; it is still recorded in history and retried.
            context = await workflow.execute_local_activity_method(
                ChatActivities.context,
                ContextInput(user_id=inp.user_id, query=inp.question, media_ids=inp.media_ids),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=NETWORK_RETRY,
            )
            result = await workflow.execute_activity_method(
                ChatActivities.generate,
                GenerateInput(
                    turn_id=inp.turn_id,
                    question=inp.question,
                    memories=context.memories,
                    passages=context.passages,
                    providers=inp.providers,
                    mode=inp.mode,
                ),
                task_queue=q.llm,
                schedule_to_start_timeout=CHAT_QUEUE_WAIT,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=PROVIDER_RETRY,
            )
        except (asyncio.CancelledError, CancelledError):
            await self._stopped(inp)
            raise
        except (ActivityError, ApplicationError) as err:  # a failed local activity arrives as ApplicationError
            if isinstance(err.cause, CancelledError):  # the workflow's cancellation, delivered via the activity
                await self._stopped(inp)
                raise
            reason = failure_reason(err)
            await self._finish(inp, "failed", reason)
            raise ApplicationError(f"chat turn failed: {reason}", type="TurnFailed", non_retryable=True) from err

        # The answer is stored and streamed; remembering is off its critical path and may fail without harm.
        try:
            await workflow.execute_activity_method(
                ChatActivities.remember,
                RememberInput(
                    user_id=inp.user_id, conversation_id=inp.conversation_id, turn_id=inp.turn_id, text=inp.question
                ),
                task_queue=q.cpu,
                schedule_to_start_timeout=QUEUE_WAIT_CPU,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=NETWORK_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("memory add failed: %s", failure_reason(err))
        await self._finish(inp, "completed")
        return str(result.message_id)

    async def _stopped(self, inp: ChatTurnInput) -> None:
        """The user pressed stop (POST /api/chat/{turn_id}/stop): the generation is cancelled at its next
        heartbeat, nothing is stored or remembered, and the stream ends with an error event saying so."""
        await self._finish(inp, "cancelled", "stopped by the user")

    async def _finish(self, inp: ChatTurnInput, status: str, error: str | None = None) -> None:
        await workflow.execute_local_activity_method(
            ChatActivities.finish,
            FinishTurn(turn_id=inp.turn_id, status=status, error=error),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=DB_OUTAGE_BUDGET,
            retry_policy=DB_RETRY,
        )
