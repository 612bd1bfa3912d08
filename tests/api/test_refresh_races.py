"""A token refresh that fails while the user disconnects or reconnects: the user's change stands. The refresh's
outcome is written only if the row is still the one it read (its `version`) and still live."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import col

from models import Integration, IntegrationStatus
from nexus.core.db import session_scope
from nexus.identity import oauth
from nexus.integrations import service
from nexus.integrations.service import RefreshDeferred, seal
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden


async def connected(runtime: Runtime, owner: uuid.UUID) -> uuid.UUID:
    async with session_scope(runtime.engine) as session:
        row = Integration(owner_id=owner, provider="spotify", account_id=f"acct-{uuid.uuid4().hex[:6]}")
        session.add(row)
        await session.flush()
        row.access_token = seal(row.id, "access_token", "access-1")
        row.refresh_token = seal(row.id, "refresh_token", "refresh-1")
        return row.id


async def state(runtime: Runtime, integration_id: uuid.UUID) -> Integration:
    async with session_scope(runtime.engine) as session:
        row = await session.get(Integration, integration_id)
        assert row is not None
        return row


@pytest.mark.parametrize(
    ("failure", "change"),
    [
        (oauth.TokenEndpointError(503), "disconnect"),  # would have written `degraded` over `revoked`
        (oauth.TokenEndpointError(400, "invalid_grant"), "disconnect"),  # `needs_reauth` over `revoked`
        (oauth.TokenEndpointError(400, "invalid_grant"), "reconnect"),  # `needs_reauth` over fresh tokens
        (oauth.TokenEndpointError(401, "invalid_client"), "reconnect"),  # `degraded` over fresh tokens
    ],
)
async def test_a_refresh_failing_while_the_user_changes_the_integration_leaves_their_change(
    runtime: Runtime,
    make_account: MakeAccount,
    monkeypatch: pytest.MonkeyPatch,
    failure: oauth.TokenEndpointError,
    change: str,
) -> None:
    owner = (await make_account()).user.id
    integration_id = await connected(runtime, owner)
    values: dict[str, Any] = (
        {"status": IntegrationStatus.revoked, "access_token": None, "refresh_token": None}
        if change == "disconnect"
        else {"access_token": seal(integration_id, "access_token", "access-2")}
    )

    async def changed_while_asking(_config: object, _refresh_token: str) -> dict:
        async with session_scope(runtime.engine) as session:  # the user, while the provider answers slowly
            await session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .values(**values, version=col(Integration.version) + 1)
            )
        raise failure

    monkeypatch.setattr(oauth, "refresh", changed_while_asking)
    with overridden(runtime.settings, spotify_client_id="nexus", spotify_client_secret=SecretStr("secret")):
        try:
            outcome = await service.refresh(runtime, integration_id)
        except RefreshDeferred:  # the stale attempt must not ask to be retried over the user's change either
            pytest.fail("a stale attempt deferred (and would retry) instead of standing down")
    after = await state(runtime, integration_id)
    expected = IntegrationStatus.revoked if change == "disconnect" else IntegrationStatus.active
    assert (outcome.status, after.status) == (expected.value, expected)
    assert after.last_error is None and after.failure_days == []
    assert after.refreshing_until is None  # the attempt's own lease is released
