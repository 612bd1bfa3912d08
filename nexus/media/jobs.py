"""The job record and its ordered event log: the one place stage/progress is written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from models import JobEvent, MediaItem, MediaJob, MediaStatus
from models.base import utcnow
from nexus.db import session_scope
from nexus.eventlog import follow, notify

# Overall progress (0-100) spanned by each stage, so one bar can move through the whole pipeline.
STAGE_SPAN: dict[MediaStatus, tuple[int, int]] = {
    MediaStatus.pending: (0, 0),
    MediaStatus.extracting: (0, 15),
    MediaStatus.fingerprinting: (15, 20),
    MediaStatus.transcribing: (20, 80),
    MediaStatus.enriching: (80, 90),
    MediaStatus.embedding: (90, 99),
}


def overall_progress(stage: MediaStatus, fraction: float) -> int:
    if stage.terminal:
        return 100
    lo, hi = STAGE_SPAN[stage]
    return int(lo + (hi - lo) * max(0.0, min(1.0, fraction)))


def media_prefix(owner_id: uuid.UUID, media_id: uuid.UUID) -> str:
    """Every object of one media item lives under this per-user prefix."""
    return f"users/{owner_id}/media/{media_id}"


async def record(
    engine: AsyncEngine,
    job_id: uuid.UUID,
    stage: MediaStatus,
    fraction: float = 0.0,
    *,
    message: str | None = None,
    error: str | None = None,
) -> None:
    """Move the job (and its media item) to `stage` at `fraction` done, and append an event, atomically."""
    progress = overall_progress(stage, fraction)
    terminal = stage.terminal
    async with session_scope(engine) as session:
        job = await session.get(MediaJob, job_id)
        if job is None:
            return  # deleted meanwhile; nothing to report to
        values: dict[str, object] = {"stage": stage, "progress": progress, "updated_at": utcnow()}
        if terminal:
            values["finished_at"] = utcnow()
            values["error"] = error
        await session.execute(update(MediaJob).where(MediaJob.id == job_id).values(**values))
        media_values: dict[str, object] = {"status": stage, "updated_at": utcnow()}
        if terminal:
            media_values["error"] = error
        await session.execute(update(MediaItem).where(MediaItem.id == job.media_id).values(**media_values))
        session.add(
            JobEvent(job_id=job_id, stage=stage, progress=progress, terminal=terminal, message=error or message)
        )
        await notify(session, job_id)


async def stream_events(engine: AsyncEngine, job_id: uuid.UUID) -> AsyncIterator[JobEvent]:
    """The current run's events in order, then new ones, until a terminal one. A run starts at its latest
    `pending` event (job creation or a retry), so a retried job streams the new run."""
    async with session_scope(engine) as session:
        start = (
            await session.execute(
                select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id, JobEvent.stage == MediaStatus.pending)
            )
        ).scalar_one()
    async for event in follow(
        engine,
        JobEvent,
        MediaJob,
        JobEvent.job_id,
        job_id,
        after_seq=(start or 0) - 1,
        is_terminal=lambda e: e.terminal,
    ):
        yield event
