"""TokenRefreshWorkflow against a mocked refresh activity on the time-skipping server: a month of an
integration's life in seconds, Retry-After honoured, refresh_now and disconnect, a misconfigured client that is
not hammered, and continue-as-new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from nexus.core.orchestration import (
    SA_INTEGRATION,
    TaskQueues,
)
from nexus.integrations.contracts import RefreshOutcome
from tests.workflows.mocks import RefreshFakes, running_workers, start_token_refresh
from workflows.integrations import refresh_delay


def test_refresh_timing() -> None:
    now = datetime(2026, 1, 1, 12)
    hour = now + timedelta(hours=1)
    assert refresh_delay(now, hour, now, 300, 30) == timedelta(minutes=55, seconds=-30)
    # Short-lived tokens are refreshed at 70 % of their life, not before they are issued.
    assert refresh_delay(now, now + timedelta(seconds=4), now, 300, 30) == timedelta(seconds=2.8)
    assert refresh_delay(now, now + timedelta(days=30), now, 300, 30) == timedelta(hours=24)  # at least daily
    assert refresh_delay(now, None, now, 300, 30) == timedelta(hours=24)
    assert refresh_delay(now, now - timedelta(hours=1), now - timedelta(hours=2), 300, 30) == timedelta(0)


async def test_a_month_of_refreshes_in_seconds(client: Client, queues: TaskQueues) -> None:
    """Every token is refreshed before it expires, never much earlier than planned, with jitter; after a month
    the user revokes consent and the workflow ends with needs_reauth (no hot loop). The run continued as new
    along the way, so its history never grew large."""
    fakes = RefreshFakes(stop_after=timedelta(days=30))
    async with running_workers(client, queues, fakes):
        handle = await start_token_refresh(client, queues, None)  # expiry unknown: refresh at once
        first_run = (await handle.describe()).run_id
        assert await handle.result() == "needs_reauth"
        last = await handle.describe()
    assert 30 * 12 <= len(fakes.calls) <= 30 * 12 + 40
    expiry = fakes.calls[0] + fakes.lifetime
    leads = []
    for call in fakes.calls[1:-1]:
        assert call < expiry, "a token expired before it was refreshed"
        leads.append((expiry - call).total_seconds())
        expiry = call + fakes.lifetime
    assert min(leads) >= 300 - 1 and max(leads) <= 360 + 5  # margin 5 min, jitter up to 1 min
    assert len({round(lead) for lead in leads}) > 10  # jittered, not a herd
    assert last.run_id != first_run and last.typed_search_attributes.get(SA_INTEGRATION) == "spotify"


async def test_passing_failures_are_retried_and_the_integration_keeps_going(client: Client, queues: TaskQueues) -> None:
    """(The time-skipping server ignores `next_retry_delay`; Retry-After is checked on the dev server in
    tests/e2e/test_integrations.py.)"""
    busy = ApplicationError("429", type="ProviderUnavailable", next_retry_delay=timedelta(minutes=7))
    fakes = RefreshFakes(script=[busy, busy], stop_after=timedelta(hours=3))
    async with running_workers(client, queues, fakes):
        handle = await start_token_refresh(client, queues, None)
        assert await handle.result() == "needs_reauth"
    assert len(fakes.calls) >= 4  # two failed attempts, then it went on refreshing


async def test_refresh_now_answers_with_the_new_status_and_disconnect_ends_it(
    client: Client, queues: TaskQueues
) -> None:
    fakes = RefreshFakes()
    async with running_workers(client, queues, fakes):
        handle = await start_token_refresh(client, queues, datetime.now(UTC) + timedelta(days=3650))
        assert await handle.execute_update("refresh_now", result_type=str) == "active"
        assert len(fakes.calls) == 1
        await handle.signal("disconnect")
        assert await handle.result() == "revoked"
    assert len(fakes.calls) == 1


async def test_a_misconfigured_client_waits_for_the_operator(client: Client, queues: TaskQueues) -> None:
    misconfigured = RefreshOutcome(status="degraded", retry_in_s=3600, detail="invalid_client")
    fakes = RefreshFakes(script=[misconfigured], stop_after=timedelta(minutes=30))
    async with running_workers(client, queues, fakes):
        handle = await start_token_refresh(client, queues, None)
        assert await handle.result() == "needs_reauth"
    assert len(fakes.calls) == 2 and fakes.calls[1] - fakes.calls[0] >= timedelta(hours=1)
