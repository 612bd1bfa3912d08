"""Token-refresh activities: thin adapters over `nexus.integrations.service` (error types, heartbeats)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.support import heartbeating
from nexus.integrations import service
from nexus.integrations.contracts import RefreshOutcome
from nexus.runtime import Runtime


class IntegrationActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    @activity.defn(name="integrations.refresh")
    async def refresh(self, integration_id: uuid.UUID) -> RefreshOutcome:
        try:
            return await service.refresh(self.rt, integration_id)
        except service.RefreshDeferred as exc:
            # Retried by the workflow's policy; the provider's Retry-After, when it names one, sets the wait.
            delay = timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
            raise ApplicationError(str(exc), type="ProviderUnavailable", next_retry_delay=delay) from None

    @activity.defn(name="integrations.sweep")
    async def sweep(self) -> int:
        async with heartbeating():
            return await service.sweep(self.rt, activity.client())
