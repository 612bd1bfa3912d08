"""Keeping an integration signed in: one long-lived workflow per integration, on a durable timer.

Orchestration only: when to refresh (expiry minus a margin, minus a deterministic jitter, at least daily),
what to do with the outcome, and the two ways in from outside: `refresh_now` (an update that returns the new
status; the API sends it when a provider answers 401, and the refresh route) and `disconnect`. Tokens never pass
through here: the activity reads and writes them in Postgres, and returns a status and an expiry.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.integrations import IntegrationActivities
    from models import IntegrationStatus
    from nexus.core.errors import NON_RETRYABLE_TYPES
    from nexus.core.orchestration import TOKEN_REFRESH_SWEEP_WORKFLOW, TOKEN_REFRESH_WORKFLOW
    from nexus.integrations.contracts import RefreshOutcome, TokenRefreshInput
    from nexus.media.contracts import MaintenanceInput
    from workflows.shared import DB_RETRY

# A provider that is down or rate-limiting is asked again with backoff (Retry-After wins when it says more),
# for as long as it takes: the integration shows `degraded` meanwhile, and only failures on separate days (or a
# refused grant) make it `needs_reauth`.
REFRESH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=15),
    maximum_attempts=0,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
AT_LEAST_EVERY = timedelta(hours=24)  # unused refresh tokens die (Google: 6 months; "Testing" apps: 7 days)
LEAD_SHARE = 0.3  # never refresh earlier than 30 % of a token's lifetime before it expires
HISTORY_LIMIT = 2_000  # events before continuing as new (each refresh cycle writes about ten)
LIVE = (IntegrationStatus.active.value, IntegrationStatus.degraded.value)


def refresh_delay(
    now: datetime, expires_at: datetime | None, issued_at: datetime, margin_s: float, jitter: float
) -> timedelta:
    """How long to sleep before the next refresh: `margin + jitter` before expiry, but at most 30 % of the
    token's lifetime early (short-lived tokens), at most a day, and never negative."""
    if expires_at is None:
        return AT_LEAST_EVERY
    lifetime = max((expires_at - issued_at).total_seconds(), 0.0)
    lead = min(margin_s + jitter, lifetime * LEAD_SHARE)
    due = expires_at - timedelta(seconds=lead)
    return max(timedelta(0), min(due - now, AT_LEAST_EVERY))


@workflow.defn(name=TOKEN_REFRESH_WORKFLOW)
class TokenRefreshWorkflow:
    def __init__(self) -> None:
        self._wanted = 0  # refreshes asked for from outside
        self._done = 0  # refresh attempts finished (success or not)
        self._disconnect = False
        self._status = IntegrationStatus.active.value

    @workflow.run
    async def run(self, inp: TokenRefreshInput) -> str:
        expires_at, issued_at = inp.expires_at, workflow.now()
        refreshes = inp.refreshes
        while True:
            jitter = workflow.random().uniform(0, inp.jitter_s)
            delay = refresh_delay(workflow.now(), expires_at, issued_at, inp.margin_s, jitter)
            workflow.set_current_details(
                f"{refreshes} refreshes; next at {(workflow.now() + delay).isoformat(timespec='seconds')}"
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._disconnect or self._wanted > self._done, timeout=delay)
            if self._disconnect:
                self._status = IntegrationStatus.revoked.value
                break
            outcome = await self._refresh(inp)
            self._status = outcome.status
            if outcome.refreshed:
                refreshes += 1
                expires_at, issued_at = outcome.expires_at, workflow.now()
            elif outcome.expires_at is not None:
                expires_at = outcome.expires_at
            self._done = max(self._done + 1, self._wanted)
            if outcome.status not in LIVE:
                break  # needs re-auth or revoked: reconnecting starts a new workflow
            if outcome.retry_in_s:  # a misconfigured client: wait for the operator, do not hammer the provider
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._disconnect or self._wanted > self._done,
                        timeout=timedelta(seconds=outcome.retry_in_s or 0),
                    )
            if workflow.info().get_current_history_length() > HISTORY_LIMIT:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={"expires_at": expires_at, "refreshes": refreshes}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _refresh(self, inp: TokenRefreshInput) -> RefreshOutcome:
        return await workflow.execute_activity_method(
            IntegrationActivities.refresh,
            inp.integration_id,
            task_queue=inp.queues.workflows,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=REFRESH_RETRY,
            summary="refresh the access token",
        )

    @workflow.update
    async def refresh_now(self) -> str:
        """Refresh as soon as possible and answer with the integration's status afterwards."""
        self._wanted += 1
        target = self._wanted
        await workflow.wait_condition(lambda: self._done >= target or self._status not in LIVE)
        return self._status

    @workflow.signal
    def disconnect(self) -> None:
        self._disconnect = True

    @workflow.query
    def status(self) -> str:
        return self._status


@workflow.defn(name=TOKEN_REFRESH_SWEEP_WORKFLOW)
class TokenRefreshSweepWorkflow:
    """Run by the `token-refresh-sweep` schedule: every live integration has its workflow, and no expired token
    waits for a timer that was lost."""

    @workflow.run
    async def run(self, inp: MaintenanceInput) -> int:
        return await workflow.execute_activity_method(
            IntegrationActivities.sweep,
            task_queue=inp.queues.workflows,
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=timedelta(minutes=14),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )
