"""Retry policies and timeouts: one home for how hard each kind of step is retried.

Workflows set them at every call site from here. Queue names, workflow ids and search attributes live in
`nexus.core.orchestration`; error type names in `nexus.core.errors`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from nexus.core.errors import NON_RETRYABLE_TYPES

# --- retry policies ------------------------------------------------------------------------------------------

# Network-bound steps (download, object storage, provider calls): back off, give up after a few minutes.
NETWORK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# Local compute (convert, fingerprint, transcribe, embed): a crash is worth a couple of retries, not ten.
COMPUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# LLM generation: 5xx/timeouts retry with backoff (the libraries' own retries are off, so every attempt is in
# history); 4xx/auth errors come back as non-retryable ApplicationErrors.
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# Bookkeeping writes to Postgres: cheap, retried patiently for as long as a database restart or failover may take.
# No attempt limit: call sites bound it in time with `schedule_to_close_timeout=DB_OUTAGE_BUDGET`, so a workflow's
# final state still reaches Postgres after a long outage (and the reconciliation schedule catches the rest).
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
DB_OUTAGE_BUDGET = timedelta(minutes=15)


# --- how long a step may wait in its queue ---------------------------------------------------------------------

# A queue can back up (a batch of long recordings ahead on the one CPU transcriber), so waiting is normal; waiting
# forever is not: a step nobody picks up within this long fails with a reason naming the queue (is its worker
# running?), and the user can retry it. Transcription gets longest: a day's backlog on CPU takes hours.
QUEUE_WAIT_CPU = timedelta(hours=2)
QUEUE_WAIT_GPU = timedelta(hours=12)
QUEUE_WAIT_LLM = timedelta(hours=2)
CHAT_QUEUE_WAIT = timedelta(minutes=2)  # someone is waiting for the answer: tell them soon that no model is serving


def _application_error(err: BaseException) -> ApplicationError | None:
    """The ApplicationError that made this attempt fail, or None when it timed out or was cancelled.

    The chain is walked only down to a timeout: the server chains the previous attempt's error beneath a
    timeout, and that older error is not why the step failed."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ApplicationError):
        if isinstance(cause, TemporalTimeoutError):
            return None
        cause = cause.__cause__
    return cause


def failure_type(err: BaseException) -> str | None:
    """The activity's own error type (e.g. "BadInput"), or None for timeouts and cancellations."""
    cause = _application_error(err)
    return cause.type if cause is not None else None


def failure_reason(err: BaseException) -> str:
    """The activity's own error, as "Type: message", for the job record (not the library error beneath it)."""
    app = _application_error(err)
    if app is not None:
        return f"{app.type}: {app.message}" if app.type else app.message
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, TemporalTimeoutError):
        cause = cause.__cause__
    if isinstance(cause, TemporalTimeoutError):  # say which timeout: heartbeat (a dead worker) or the whole step
        if cause.type is not None and cause.type.name == "SCHEDULE_TO_START":
            return "TimeoutError: no worker picked the step up in time (is a worker serving its queue running?)"
        kind = cause.type.name.lower().replace("_", " ") if cause.type is not None else "activity"
        return f"TimeoutError: the step hit its {kind} timeout"
    cause = err.__cause__ or err
    return f"{type(cause).__name__}: {getattr(cause, 'message', None) or cause}"
