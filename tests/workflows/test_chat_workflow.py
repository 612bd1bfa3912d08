"""ChatTurnWorkflow against mocked activities on the time-skipping server: step order, what each step is given,
how failures of generation and of memory differ, and retries."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from nexus.chat.contracts import ChainMode, FinishTurn
from nexus.core.orchestration import SA_USER_ID, TaskQueues
from tests.workflows.mocks import ChatFakes, chat_input, running_workers, start_chat


def provider_error(message: str, *, retryable: bool) -> ApplicationError:
    """What activities.support.provider_failure raises for a provider's error."""
    return ApplicationError(message, type="ProviderError", non_retryable=not retryable)


def turn_failure(exc_info: pytest.ExceptionInfo[WorkflowFailureError]) -> ApplicationError:
    cause = exc_info.value.cause
    assert isinstance(cause, ApplicationError), f"expected an ApplicationError, got {cause!r}"
    return cause


async def test_happy_path_runs_context_generate_remember_finish(client: Client, queues: TaskQueues) -> None:
    """context -> generate -> remember -> finish(completed), each once; generation gets the question, the
    memories and passages found by context, the providers and mode; the result is the stored message's id."""
    fakes = ChatFakes()
    inp = chat_input(queues).model_copy(update={"providers": ["a", "b"], "mode": ChainMode.parallel})
    async with running_workers(client, queues, fakes):
        handle = await start_chat(client, inp)
        message_id = await handle.result()

    assert message_id == str(fakes.message_id)
    assert fakes.calls == [("chat.context", 1), ("chat.generate", 1), ("chat.remember", 1), ("chat.finish", 1)]
    [generated] = fakes.generate_inputs
    assert (generated.turn_id, generated.question) == (inp.turn_id, inp.question)
    assert generated.memories == fakes.memories
    assert [p.text for p in generated.passages] == ["a passage"]
    assert (generated.providers, generated.mode) == (["a", "b"], ChainMode.parallel)
    [remembered] = fakes.remembered
    assert (remembered.user_id, remembered.conversation_id, remembered.text) == (
        inp.user_id,
        inp.conversation_id,
        inp.question,
    )
    assert fakes.finishes == [FinishTurn(turn_id=inp.turn_id, status="completed")]
    described = await handle.describe()
    assert described.typed_search_attributes.get(SA_USER_ID) == str(inp.user_id)


async def test_generation_failing_fails_the_turn(client: Client, queues: TaskQueues) -> None:
    """A non-retryable provider error is not retried; the turn is finished as failed with the provider's reason,
    nothing is remembered, and the workflow fails with TurnFailed."""
    fakes = ChatFakes(script={"chat.generate": [provider_error("401 invalid api key", retryable=False)]})
    inp = chat_input(queues)
    async with running_workers(client, queues, fakes):
        handle = await start_chat(client, inp)
        with pytest.raises(WorkflowFailureError) as exc_info:
            await handle.result()

    failure = turn_failure(exc_info)
    assert failure.type == "TurnFailed"
    assert failure.non_retryable
    assert failure.message == "chat turn failed: ProviderError: 401 invalid api key"
    assert fakes.attempts("chat.generate") == 1
    assert fakes.called() == ["chat.context", "chat.generate", "chat.finish"]
    assert fakes.finishes == [
        FinishTurn(turn_id=inp.turn_id, status="failed", error="ProviderError: 401 invalid api key")
    ]


async def test_context_failing_fails_the_turn_before_generation(client: Client, queues: TaskQueues) -> None:
    """The context step is a local activity under the same handler: BadInput from it (not retried, by type)
    finishes the turn as failed without calling the model."""
    bad = ApplicationError("media not found", type="BadInput", non_retryable=False)
    fakes = ChatFakes(script={"chat.context": [bad]})
    inp = chat_input(queues).model_copy(update={"media_ids": [uuid.uuid4()]})
    async with running_workers(client, queues, fakes):
        with pytest.raises(WorkflowFailureError) as exc_info:
            await (await start_chat(client, inp)).result()

    assert turn_failure(exc_info).type == "TurnFailed"
    assert fakes.attempts("chat.context") == 1
    assert "chat.generate" not in fakes.called()
    assert fakes.finishes == [FinishTurn(turn_id=inp.turn_id, status="failed", error="BadInput: media not found")]


async def test_remember_failing_does_not_fail_the_turn(client: Client, queues: TaskQueues) -> None:
    """Remembering is off the answer's critical path: when it fails for good, the turn still completes with the
    generated message."""
    broken = ApplicationError("memory store rejected the write", type="MemoryError", non_retryable=True)
    fakes = ChatFakes(script={"chat.remember": [broken]})
    inp = chat_input(queues)
    async with running_workers(client, queues, fakes):
        message_id = await (await start_chat(client, inp)).result()

    assert message_id == str(fakes.message_id)
    assert fakes.attempts("chat.remember") == 1
    assert fakes.remembered == []
    assert fakes.finishes == [FinishTurn(turn_id=inp.turn_id, status="completed")]


async def test_generation_is_retried_after_a_retryable_error(client: Client, queues: TaskQueues) -> None:
    """A retryable provider error (a 5xx) is retried under PROVIDER_RETRY (backoff skipped by the test server);
    the second attempt answers and the turn completes, finished once."""
    fakes = ChatFakes(script={"chat.generate": [provider_error("503 overloaded", retryable=True)]})
    inp = chat_input(queues)
    async with running_workers(client, queues, fakes):
        message_id = await (await start_chat(client, inp)).result()

    assert message_id == str(fakes.message_id)
    assert [attempt for name, attempt in fakes.calls if name == "chat.generate"] == [1, 2]
    assert fakes.finishes == [FinishTurn(turn_id=inp.turn_id, status="completed")]


async def test_stopping_a_turn_cancels_generation_and_records_why(own_client: Client, queues: TaskQueues) -> None:
    """Stop (a workflow cancel, POST /api/chat/{turn_id}/stop) cancels the running generation at its heartbeat,
    finishes the turn as cancelled with the reason the stream shows, remembers nothing, and ends cancelled.

    On a server of its own (see `own_client`): the activity may still be running when the workflow closes."""
    fakes = ChatFakes(block_generate=True)
    inp = chat_input(queues)
    async with running_workers(own_client, queues, fakes):
        handle = await start_chat(own_client, inp)
        await asyncio.wait_for(fakes.generate_started.wait(), timeout=10)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as exc_info:
            await handle.result()
        await asyncio.wait_for(fakes.generate_cancelled.wait(), timeout=10)

    assert isinstance(exc_info.value.cause, CancelledError)
    assert fakes.finishes == [FinishTurn(turn_id=inp.turn_id, status="cancelled", error="stopped by the user")]
    assert "chat.remember" not in fakes.called()
