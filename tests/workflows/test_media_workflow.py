"""MediaPipelineWorkflow against mocked activities on the time-skipping server: ordering, stage bookkeeping,
retry policies, cancellation, re-runs and timeouts, with no database, model or network."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.testing import WorkflowEnvironment

from models import MediaStatus
from nexus.core.orchestration import SA_MEDIA_ID, SA_STAGE, SA_USER_ID, TaskQueues
from tests.workflows.mocks import (
    HANG,
    MediaFakes,
    bad_input,
    media_input,
    running_workers,
    start_media,
    transient,
    unique_queues,
)

ALL_STEPS = ["media.fetch", "media.fingerprint", "media.transcribe", "media.enrich", "media.embed"]
HAPPY_STAGES = [
    MediaStatus.extracting,
    MediaStatus.fingerprinting,
    MediaStatus.transcribing,
    MediaStatus.enriching,
    MediaStatus.embedding,
    MediaStatus.completed,
]


def workflow_failure(exc_info: pytest.ExceptionInfo[WorkflowFailureError]) -> ApplicationError:
    cause = exc_info.value.cause
    assert isinstance(cause, ApplicationError), f"expected an ApplicationError, got {cause!r}"
    return cause


async def search_attribute(client: Client, workflow_id: str, key: SearchAttributeKey[str]) -> str | None:
    return (await client.get_workflow_handle(workflow_id).describe()).typed_search_attributes.get(key)


async def test_happy_path_runs_every_stage_in_order(client: Client, queues: TaskQueues) -> None:
    """Each step runs once, on its queue, in pipeline order, and set_stage records every stage up to completed;
    the search attributes end on the final stage."""
    fakes = MediaFakes()
    inp = media_input(queues)
    async with running_workers(client, queues, fakes):
        handle = await start_media(client, inp)
        result = await handle.result()

    assert result.status == MediaStatus.completed
    assert result.duplicate_of is None
    assert fakes.stage_names() == HAPPY_STAGES
    assert all(update.job_id == inp.job_id and update.error is None for update in fakes.stages)
    assert fakes.called() == ALL_STEPS
    assert all(fakes.attempts(step) == 1 for step in ALL_STEPS)
    assert await search_attribute(client, handle.id, SA_STAGE) == MediaStatus.completed
    assert await search_attribute(client, handle.id, SA_MEDIA_ID) == str(inp.media_id)
    assert await search_attribute(client, handle.id, SA_USER_ID) == str(inp.user_id)


async def test_duplicate_short_circuits_before_transcription(client: Client, queues: TaskQueues) -> None:
    """A fingerprint match ends the pipeline as a duplicate: nothing after fingerprinting runs."""
    original = uuid.uuid4()
    fakes = MediaFakes(duplicate_of=original)
    async with running_workers(client, queues, fakes):
        result = await (await start_media(client, media_input(queues))).result()

    assert result.status == MediaStatus.duplicate
    assert result.duplicate_of == original
    assert fakes.called() == ["media.fetch", "media.fingerprint"]
    assert fakes.stage_names() == [MediaStatus.extracting, MediaStatus.fingerprinting, MediaStatus.duplicate]


async def test_bad_input_fails_at_once_and_records_the_failure(client: Client, queues: TaskQueues) -> None:
    """BadInput is raised as a *retryable* ApplicationError, yet the retry policies list its type as
    non-retryable: one attempt only. The job record gets stage failed with the error and its type, and the
    workflow fails with StageFailed naming the stage."""
    fakes = MediaFakes(script={"media.fetch": [bad_input("not audio")]})
    async with running_workers(client, queues, fakes):
        handle = await start_media(client, media_input(queues))
        with pytest.raises(WorkflowFailureError) as exc_info:
            await handle.result()

    failure = workflow_failure(exc_info)
    assert failure.type == "StageFailed"
    assert failure.non_retryable
    assert failure.message == "extracting failed: BadInput: not audio"
    assert fakes.attempts("media.fetch") == 1
    assert fakes.called() == ["media.fetch"]
    assert fakes.stage_names() == [MediaStatus.extracting, MediaStatus.failed]
    final = fakes.stages[-1]
    assert (final.error_type, final.error) == ("BadInput", "BadInput: not audio")
    assert await search_attribute(client, handle.id, SA_STAGE) == MediaStatus.failed


async def test_retryable_error_is_retried_then_succeeds(client: Client, queues: TaskQueues) -> None:
    """Two transient fetch failures are retried (backoff skipped by the test server); the third attempt
    succeeds and the pipeline completes with no failure recorded."""
    fakes = MediaFakes(script={"media.fetch": [transient(), transient()]})
    async with running_workers(client, queues, fakes):
        result = await (await start_media(client, media_input(queues))).result()

    assert result.status == MediaStatus.completed
    assert [attempt for name, attempt in fakes.calls if name == "media.fetch"] == [1, 2, 3]
    assert fakes.stage_names() == HAPPY_STAGES


async def test_cancel_during_transcription_records_cancelled(own_client: Client, queues: TaskQueues) -> None:
    """Cancelling the workflow while transcription runs cancels the (heartbeating) activity, records stage
    cancelled, and ends the workflow as cancelled; nothing after transcription runs.

    On a server of its own (see `own_client`): the activity is still running when the workflow closes."""
    fakes = MediaFakes(block_transcribe=True)
    async with running_workers(own_client, queues, fakes):
        handle = await start_media(own_client, media_input(queues))
        await asyncio.wait_for(fakes.transcribe_started.wait(), timeout=10)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as exc_info:
            await handle.result()
        await asyncio.wait_for(fakes.transcribe_cancelled.wait(), timeout=10)

    assert isinstance(exc_info.value.cause, CancelledError)
    assert fakes.stage_names() == [
        MediaStatus.extracting,
        MediaStatus.fingerprinting,
        MediaStatus.transcribing,
        MediaStatus.cancelled,
    ]
    assert fakes.stages[-1].error == "cancelled by the user"
    assert "media.enrich" not in fakes.called()


async def test_rerun_after_failure_reuses_finished_steps(client: Client, queues: TaskQueues) -> None:
    """Retrying a failed job re-runs the same workflow id from the start: every activity is called again, but
    the ones whose output is stored answer reused=True without redoing the work, so transcription (the
    expensive step) happens once over both runs."""
    fakes = MediaFakes(
        script={"media.enrich": [ApplicationError("key revoked", type="ProviderError", non_retryable=True)]}
    )
    inp = media_input(queues)
    async with running_workers(client, queues, fakes):
        first = await start_media(client, inp)
        with pytest.raises(WorkflowFailureError) as exc_info:
            await first.result()
        assert workflow_failure(exc_info).message == "enriching failed: ProviderError: key revoked"
        assert fakes.work == {"media.fetch": 1, "media.transcribe": 1}

        second = await start_media(client, inp, workflow_id=first.id)
        result = await second.result()

    assert second.id == first.id
    assert second.result_run_id != first.result_run_id
    assert result.status == MediaStatus.completed
    for step in ("media.fetch", "media.fingerprint", "media.transcribe", "media.enrich"):
        assert fakes.attempts(step) == 2, step  # called by both runs ...
    assert fakes.work["media.transcribe"] == 1  # ... but transcription was done once
    assert fakes.work == {"media.fetch": 1, "media.transcribe": 1, "media.enrich": 1, "media.embed": 1}
    assert fakes.stage_names()[-1] == MediaStatus.completed


async def test_missed_heartbeat_is_retried(client: Client, queues: TaskQueues) -> None:
    """A transcription attempt that never heartbeats is timed out after its 10 s heartbeat timeout and retried
    (a wedged GPU worker must not fail the job); the second attempt succeeds and the pipeline completes.

    The time-skipping server does not skip time while an activity is running, so the hang costs a real 10 s."""
    fakes = MediaFakes(script={"media.transcribe": [HANG]})
    async with running_workers(client, queues, fakes):
        result = await (await start_media(client, media_input(queues))).result()

    assert result.status == MediaStatus.completed
    assert [attempt for name, attempt in fakes.calls if name == "media.transcribe"] == [1, 2]
    assert fakes.stage_names() == HAPPY_STAGES


@dataclass
class TimedOut:
    failure: ApplicationError
    fakes: MediaFakes


@pytest.fixture(scope="module")
async def transcription_timed_out(workflow_env: WorkflowEnvironment) -> TimedOut:
    """Transcription fails transiently three times, then its last (4th) attempt never heartbeats and times out.
    Run once for the tests below: the hanging attempt costs a real 10 s."""
    client, queues = workflow_env.client, unique_queues()
    fakes = MediaFakes(script={"media.transcribe": [transient(), transient(), transient(), HANG]})
    async with running_workers(client, queues, fakes):
        handle = await start_media(client, media_input(queues))
        with pytest.raises(WorkflowFailureError) as exc_info:
            await handle.result()
    return TimedOut(workflow_failure(exc_info), fakes)


async def test_last_attempt_timing_out_fails_the_stage(transcription_timed_out: TimedOut) -> None:
    """After COMPUTE_RETRY's 4 attempts, the last ending in a heartbeat timeout, the stage fails: StageFailed for
    the workflow, stage failed in the job record, and nothing after transcription runs."""
    failure, fakes = transcription_timed_out.failure, transcription_timed_out.fakes
    assert failure.type == "StageFailed"
    assert failure.message.startswith("transcribing failed: ")
    activity_error = failure.__cause__
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    timeout = activity_error.__cause__
    assert isinstance(timeout, TemporalTimeoutError)
    assert timeout.type == TimeoutType.HEARTBEAT
    assert [attempt for name, attempt in fakes.calls if name == "media.transcribe"] == [1, 2, 3, 4]
    assert fakes.stages[-1].stage == MediaStatus.failed
    assert "media.enrich" not in fakes.called()


async def test_last_attempt_timing_out_is_recorded_as_a_timeout(transcription_timed_out: TimedOut) -> None:
    """The recorded reason of a stage whose last attempt timed out names the timeout, and carries no error type
    (failure_type's contract: None for timeouts), whatever earlier attempts failed with."""
    failure, final = transcription_timed_out.failure, transcription_timed_out.fakes.stages[-1]
    assert "timeout" in failure.message.lower()
    assert final.error is not None and "timeout" in final.error.lower()
    assert final.error_type is None


async def test_stage_bookkeeping_rides_out_a_database_outage(client: Client, queues: TaskQueues) -> None:
    """set_stage failing while Postgres restarts is retried (with backoff, bounded in time, not in attempts): the
    run does not fail over bookkeeping, and every stage is recorded once the database is back."""
    outage = [ApplicationError("connection refused", type="OperationalError") for _ in range(3)]
    fakes = MediaFakes(script={"media.set_stage": list(outage)})
    async with running_workers(client, queues, fakes):
        result = await (await start_media(client, media_input(queues))).result()

    assert result.status == MediaStatus.completed
    assert fakes.stage_names() == HAPPY_STAGES
    assert all(fakes.attempts(step) == 1 for step in ALL_STEPS)  # no expensive step repeated meanwhile


async def test_every_remote_step_bounds_its_wait_in_the_queue(client: Client, queues: TaskQueues) -> None:
    """A step on a queue nobody serves (its worker is down) must not wait forever: every activity the pipeline
    schedules on a worker queue carries its queue's schedule-to-start limit (the server enforces it; the time-
    skipping test server cannot skip a wait for a worker, so the history is checked instead)."""
    from workflows.shared import QUEUE_WAIT_CPU, QUEUE_WAIT_GPU, QUEUE_WAIT_LLM

    fakes = MediaFakes()
    async with running_workers(client, queues, fakes):
        handle = await start_media(client, media_input(queues))
        await handle.result()
    expected = {queues.cpu: QUEUE_WAIT_CPU, queues.gpu: QUEUE_WAIT_GPU, queues.llm: QUEUE_WAIT_LLM}
    seen = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            seen[attrs.activity_type.name] = (attrs.task_queue.name, attrs.schedule_to_start_timeout.ToTimedelta())
    assert set(seen) == set(ALL_STEPS)
    for name, (queue, wait) in seen.items():
        assert wait == expected[queue], (name, queue, wait)
