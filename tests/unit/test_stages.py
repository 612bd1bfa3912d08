"""Pipeline stages, progress and the orchestration contract.

Covers `nexus.media.repository.overall_progress`/`STAGE_SPAN` (one progress bar across all stages must only move
forward and reach 100 only when the job is over), `nexus.core.orchestration` (queue names and workflow ids that
API, workers and workflows must agree on) and `workflows.shared` (how a failed activity is reported and which
errors are retried).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from models import MediaStatus
from nexus.core.errors import BAD_INPUT, BadInput
from nexus.core.orchestration import (
    SEARCH_ATTRIBUTES,
    Queue,
    TaskQueues,
    chat_turn_workflow_id,
    media_workflow_id,
)
from nexus.media.repository import STAGE_SPAN, media_prefix, overall_progress
from workflows.shared import (
    COMPUTE_RETRY,
    DB_OUTAGE_BUDGET,
    DB_RETRY,
    NETWORK_RETRY,
    PROVIDER_RETRY,
    failure_reason,
    failure_type,
)

PIPELINE = [
    MediaStatus.pending,
    MediaStatus.extracting,
    MediaStatus.fingerprinting,
    MediaStatus.transcribing,
    MediaStatus.enriching,
    MediaStatus.embedding,
]
TERMINAL = [MediaStatus.completed, MediaStatus.duplicate, MediaStatus.failed, MediaStatus.cancelled]
FRACTIONS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]


def test_every_status_is_either_a_pipeline_stage_or_terminal() -> None:
    assert set(PIPELINE) | set(TERMINAL) == set(MediaStatus)
    assert [s.terminal for s in PIPELINE] == [False] * len(PIPELINE)
    assert [s.terminal for s in TERMINAL] == [True] * len(TERMINAL)


def test_every_non_terminal_stage_has_a_span_inside_0_100() -> None:
    assert set(STAGE_SPAN) == set(PIPELINE)
    for lo, hi in STAGE_SPAN.values():
        assert 0 <= lo <= hi < 100


def test_progress_never_goes_back_through_the_pipeline() -> None:
    sequence = [overall_progress(stage, f) for stage in PIPELINE for f in FRACTIONS]
    assert sequence == sorted(sequence)
    assert sequence[0] == 0
    assert all(isinstance(p, int) for p in sequence)


def test_non_terminal_progress_stays_below_100() -> None:
    assert max(overall_progress(s, 1.0) for s in PIPELINE) < 100


def test_fraction_moves_progress_within_a_long_stage() -> None:
    lo, hi = STAGE_SPAN[MediaStatus.transcribing]
    assert overall_progress(MediaStatus.transcribing, 0.0) == lo
    assert overall_progress(MediaStatus.transcribing, 1.0) == hi
    assert lo < overall_progress(MediaStatus.transcribing, 0.5) < hi


@pytest.mark.parametrize("stage", PIPELINE)
def test_fractions_outside_0_1_are_clamped(stage: MediaStatus) -> None:
    assert overall_progress(stage, -3.0) == overall_progress(stage, 0.0)
    assert overall_progress(stage, 7.5) == overall_progress(stage, 1.0)


@pytest.mark.parametrize("stage", TERMINAL)
def test_terminal_stages_are_100_whatever_the_fraction(stage: MediaStatus) -> None:
    assert {overall_progress(stage, f) for f in [-1.0, 0.0, 0.3, 2.0]} == {100}


def test_media_prefix_is_per_owner_and_media() -> None:
    owner, media = uuid.uuid4(), uuid.uuid4()
    prefix = media_prefix(owner, media)
    assert prefix.startswith(f"users/{owner}/")
    assert str(media) in prefix
    assert media_prefix(uuid.uuid4(), media) != prefix


# --- orchestration contract ------------------------------------------------------------------------------------


def test_task_queues_from_prefix_names_every_queue() -> None:
    queues = TaskQueues.from_prefix("run42")
    assert set(TaskQueues.model_fields) == {q.value for q in Queue}
    assert {q: queues.name(q) for q in Queue} == {q: f"run42-{q.value}" for q in Queue}
    assert len({queues.name(q) for q in Queue}) == len(Queue)


def test_different_prefixes_never_share_a_queue() -> None:
    a, b = TaskQueues.from_prefix("nexus"), TaskQueues.from_prefix("test-1")
    assert not {a.name(q) for q in Queue} & {b.name(q) for q in Queue}


def test_task_queues_survive_serialisation_into_workflow_input() -> None:
    queues = TaskQueues.from_prefix("p")
    assert TaskQueues.model_validate_json(queues.model_dump_json()) == queues


def test_workflow_ids_are_deterministic_and_distinct() -> None:
    media, conversation = uuid.uuid4(), uuid.uuid4()
    assert media_workflow_id(media) == media_workflow_id(media) == f"media-{media}"
    assert media_workflow_id(media) != media_workflow_id(uuid.uuid4())
    turns = {chat_turn_workflow_id(conversation, n) for n in range(5)}
    assert len(turns) == 5
    assert chat_turn_workflow_id(conversation, 3) == f"chat-{conversation}-3"
    assert media_workflow_id(media) not in turns


def test_search_attribute_names_are_unique() -> None:
    assert len({a.name for a in SEARCH_ATTRIBUTES}) == len(SEARCH_ATTRIBUTES)


# --- failures and retries --------------------------------------------------------------------------------------


def activity_error(cause: BaseException) -> ActivityError:
    err = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="download",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = cause
    return err


def test_application_error_under_activity_error_is_reported() -> None:
    err = activity_error(ApplicationError("no media at the URL", type="BadInput"))
    assert failure_type(err) == "BadInput"
    assert failure_reason(err) == "BadInput: no media at the URL"


def test_application_error_found_deep_in_the_chain() -> None:
    inner = ApplicationError("disk full", type="OSError")
    middle = RuntimeError("wrapper")
    middle.__cause__ = inner
    err = activity_error(middle)
    assert failure_type(err) == "OSError"
    assert failure_reason(err) == "OSError: disk full"


def test_application_error_itself_and_untyped() -> None:
    assert failure_type(ApplicationError("x", type="BadInput")) == "BadInput"
    untyped = ApplicationError("just a message")
    assert failure_type(untyped) is None
    assert failure_reason(untyped) == "just a message"


def test_timeout_has_no_type_and_names_the_cause() -> None:
    timeout = TemporalTimeoutError(
        "activity StartToClose timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
    )
    err = activity_error(timeout)
    assert failure_type(err) is None
    assert failure_reason(err) == "TimeoutError: the step hit its start to close timeout"


def test_plain_exception_without_application_error() -> None:
    assert failure_type(ValueError("bad")) is None
    assert failure_reason(ValueError("bad")) == "ValueError: bad"


def test_bad_input_type_name_matches_the_exception_class() -> None:
    # Temporal records an activity's error type by its class name: the retry policies rely on that string.
    assert BAD_INPUT == BadInput.__name__ == "BadInput"


@pytest.mark.parametrize("policy", [NETWORK_RETRY, COMPUTE_RETRY, PROVIDER_RETRY])
def test_work_retry_policies_never_retry_bad_input(policy) -> None:
    assert "BadInput" in policy.non_retryable_error_types
    assert policy.maximum_attempts > 1


def test_db_retry_outlasts_a_database_restart() -> None:
    """Bookkeeping is retried without an attempt limit (0 = unlimited), bounded in time at the call sites by
    DB_OUTAGE_BUDGET, which must cover a restart of several minutes; bad input is still not retried."""
    assert DB_RETRY.maximum_attempts == 0
    assert DB_OUTAGE_BUDGET >= timedelta(minutes=10)
    assert DB_RETRY.maximum_interval is not None and DB_RETRY.maximum_interval <= timedelta(seconds=30)
    assert DB_RETRY.non_retryable_error_types == NETWORK_RETRY.non_retryable_error_types


def test_a_step_no_worker_took_says_so() -> None:
    err = ActivityError(
        "activity timed out",
        scheduled_event_id=1,
        started_event_id=0,
        identity="",
        activity_type="media.transcribe",
        activity_id="1",
        retry_state=RetryState.TIMEOUT,
    )
    err.__cause__ = TemporalTimeoutError("timed out", type=TimeoutType.SCHEDULE_TO_START, last_heartbeat_details=[])
    assert "no worker picked the step up" in failure_reason(err)
    assert failure_type(err) is None
