"""Inputs and outputs of the token-refresh workflow and its activities: integration ids and timestamps only.
No token, code or secret ever enters a workflow's input, result or history."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from nexus.core.orchestration import TaskQueues


class TokenRefreshInput(BaseModel):
    integration_id: uuid.UUID
    queues: TaskQueues
    # When the current access token expires (None: unknown, refresh now).
    expires_at: datetime | None = None
    # Refresh this long before expiry (capped at 30 % of the token's lifetime), plus up to `jitter_s` more.
    margin_s: float = 300
    jitter_s: float = 60
    refreshes: int = 0  # carried across continue-as-new, for the run's summary


class RefreshOutcome(BaseModel):
    status: str  # an IntegrationStatus value
    expires_at: datetime | None = None
    refreshed: bool = False
    # Wait this long before trying again (a misconfigured client: not the user's fault, not worth a hot loop).
    retry_in_s: float | None = None
    detail: str | None = None
