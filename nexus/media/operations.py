"""Operator actions over many jobs at once: find runs by status, age, failed stage and error text; retry or
cancel every match. A retry is the same as a user's (`service.retry`): a new run under the job's workflow id
whose steps find their finished outputs, so no download, transcription or LLM call that finished is repeated.

Only each item's latest job is considered: an older run that a newer one replaced is history, not work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased
from sqlmodel import col
from temporalio.client import Client

from models import JobEvent, MediaItem, MediaJob, MediaStatus
from models.base import utcnow
from models.media import TERMINAL
from nexus.core.db import session_scope
from nexus.core.errors import Unavailable
from nexus.core.orchestration import media_workflow_id
from nexus.core.temporal import cancel
from nexus.media import service
from nexus.runtime import Runtime


@dataclass(frozen=True)
class JobFilter:
    """Which jobs: `status` failed or cancelled (to retry) or `running` (any unfinished stage, to cancel)."""

    status: str = MediaStatus.failed
    since: timedelta | None = None  # updated within this long
    stage: MediaStatus | None = None  # failed: the stage it failed in; running: the stage it is in
    error_contains: str | None = None
    owner_id: uuid.UUID | None = None
    job_ids: list[uuid.UUID] | None = None
    limit: int = 500


@dataclass(frozen=True)
class JobMatch:
    id: uuid.UUID
    media_id: uuid.UUID
    owner_id: uuid.UUID
    title: str | None
    stage: str
    failed_stage: str | None
    error: str | None
    attempts: int
    updated_at: str


@dataclass
class Outcome:
    done: list[uuid.UUID] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # job id -> why not


async def matching(engine: AsyncEngine, f: JobFilter) -> list[JobMatch]:
    newer = aliased(MediaJob)
    last_stage = (
        select(col(JobEvent.stage))
        .where(
            col(JobEvent.job_id) == MediaJob.id,
            col(JobEvent.stage).not_in([*TERMINAL, MediaStatus.pending]),
        )
        .order_by(col(JobEvent.seq).desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(MediaJob, col(MediaItem.title), last_stage)
        .join(MediaItem, col(MediaItem.id) == MediaJob.media_id)
        .where(
            ~exists().where(and_(col(newer.media_id) == MediaJob.media_id, col(newer.started_at) > MediaJob.started_at))
        )
    )
    if f.status == "running":
        query = query.where(col(MediaJob.stage).not_in(TERMINAL))
        if f.stage:
            query = query.where(col(MediaJob.stage) == f.stage)
    else:
        query = query.where(col(MediaJob.stage) == f.status)
        if f.stage:
            query = query.where(last_stage == f.stage)
    if f.since:
        query = query.where(col(MediaJob.updated_at) >= utcnow() - f.since)
    if f.error_contains:
        query = query.where(col(MediaJob.error).icontains(f.error_contains, autoescape=True))
    if f.owner_id:
        query = query.where(col(MediaJob.owner_id) == f.owner_id)
    if f.job_ids is not None:
        query = query.where(col(MediaJob.id).in_(f.job_ids))
    async with session_scope(engine) as session:
        rows = (await session.execute(query.order_by(col(MediaJob.updated_at)).limit(f.limit))).all()
    return [
        JobMatch(
            id=job.id,
            media_id=job.media_id,
            owner_id=job.owner_id,
            title=title,
            stage=job.stage,
            failed_stage=failed if job.stage in (MediaStatus.failed, MediaStatus.cancelled) else None,
            error=job.error,
            attempts=job.attempts,
            updated_at=job.updated_at.isoformat(),
        )
        for job, title, failed in rows
    ]


async def retry_all(client: Client, runtime: Runtime, jobs: list[JobMatch]) -> Outcome:
    """Retry each; one that cannot be (it ended differently meanwhile, Temporal refused) is reported, not fatal."""
    outcome = Outcome()
    for match in jobs:
        async with session_scope(runtime.engine) as session:
            job = await session.get(MediaJob, match.id)
            if job is None:
                outcome.skipped[str(match.id)] = "deleted meanwhile"
                continue
            if await service.reconcile(client, runtime, job):
                await session.refresh(job)
            if job.stage not in (MediaStatus.failed, MediaStatus.cancelled) or await service.is_running(
                client, job.workflow_id
            ):
                outcome.skipped[str(match.id)] = f"it is {job.stage} now"
                continue
            try:
                # The operator decides here, not the user: their in-flight limit does not hold the runs back.
                await service.retry(client, runtime, session, job, within_limit=False)
            except (Unavailable, service.Busy) as exc:
                outcome.skipped[str(match.id)] = str(exc)
                continue
        outcome.done.append(match.id)
    return outcome


async def cancel_all(client: Client, jobs: list[JobMatch]) -> Outcome:
    outcome = Outcome()
    for match in jobs:
        try:
            cancelled = await cancel(client, media_workflow_id(match.media_id))
        except Unavailable as exc:
            outcome.skipped[str(match.id)] = str(exc)
            continue
        if cancelled:
            outcome.done.append(match.id)
        else:
            outcome.skipped[str(match.id)] = "not running"
    return outcome
