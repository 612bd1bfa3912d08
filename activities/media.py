"""Media pipeline activities: thin adapters over `nexus.media.processing` (heartbeats, progress, error types)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.support import heartbeating, provider_failure
from models import MediaStatus
from nexus.core.errors import BAD_INPUT
from nexus.llm.providers import ProviderError
from nexus.media import processing, service
from nexus.media.contracts import (
    DedupResult,
    EmbedResult,
    EnrichResult,
    FetchResult,
    MediaRef,
    StageUpdate,
    TranscribeResult,
)
from nexus.media.repository import record
from nexus.runtime import Runtime


class MediaActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def _reporter(self, job_id: uuid.UUID, stage: MediaStatus) -> Callable[[float], Awaitable[None]]:
        """Progress of this execution, reported with its attempt number (so a retried step is counted)."""
        attempt = activity.info().attempt

        async def report(fraction: float) -> None:
            await record(self.rt.engine, job_id, stage, fraction, attempt=attempt)

        return report

    @activity.defn(name="media.set_stage")
    async def set_stage(self, update: StageUpdate) -> None:
        stage = MediaStatus(update.stage)
        await record(self.rt.engine, update.job_id, stage, error=update.error)
        if stage is MediaStatus.failed and update.error_type == BAD_INPUT:
            await processing.discard_objects(self.rt, update.job_id)

    @activity.defn(name="media.reconcile")
    async def reconcile_jobs(self) -> int:
        """Jobs whose run ended without telling them (terminated in the UI, Postgres down at the end) catch up."""
        async with heartbeating():
            return await service.reconcile_stale(activity.client(), self.rt)

    @activity.defn(name="media.sweep_orphans")
    async def sweep_orphans(self) -> int:
        async with heartbeating():
            return await service.sweep_orphans(self.rt)

    @activity.defn(name="media.fetch")
    async def fetch_media(self, ref: MediaRef) -> FetchResult:
        async with heartbeating(self._reporter(ref.job_id, MediaStatus.extracting)) as beat:
            return await processing.fetch(self.rt, ref.media_id, beat.progress, activity.client())

    @activity.defn(name="media.fingerprint")
    async def fingerprint_media(self, ref: MediaRef) -> DedupResult:
        async with heartbeating(self._reporter(ref.job_id, MediaStatus.fingerprinting)):
            return await processing.fingerprint(self.rt, ref.media_id)

    @activity.defn(name="media.transcribe")
    async def transcribe_media(self, ref: MediaRef) -> TranscribeResult:
        async with heartbeating(self._reporter(ref.job_id, MediaStatus.transcribing)) as beat:
            return await processing.transcribe(self.rt, ref.media_id, ref.job_id, beat.progress)

    @activity.defn(name="media.enrich")
    async def enrich_media(self, ref: MediaRef) -> EnrichResult:
        async with heartbeating(self._reporter(ref.job_id, MediaStatus.enriching)):
            try:
                return await processing.enrich(self.rt, ref.media_id, ref.job_id)
            except ProviderError as exc:
                raise provider_failure(exc) from exc

    @activity.defn(name="media.embed")
    async def embed_media(self, ref: MediaRef) -> EmbedResult:
        async with heartbeating(self._reporter(ref.job_id, MediaStatus.embedding)):
            return await processing.embed(self.rt, ref.media_id, ref.job_id)
