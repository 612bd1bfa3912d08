"""Starting, cancelling, retrying and deleting media jobs: the API's verbs, kept out of the HTTP layer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from models import JobEvent, JobKind, MediaItem, MediaJob, MediaStatus
from models.base import utcnow
from models.media import TERMINAL
from nexus.core.db import lock_for_transaction, session_scope
from nexus.core.errors import Unavailable
from nexus.core.eventlog import append
from nexus.core.orchestration import (
    MEDIA_PIPELINE_WORKFLOW,
    SA_MEDIA_ID,
    SA_STAGE,
    SA_USER_ID,
    media_workflow_id,
)
from nexus.core.temporal import RPC_TIMEOUT, cancel, ended_outside, is_running, run_status, ui_summary
from nexus.media.contracts import MediaPipelineInput, PipelineResult
from nexus.media.repository import media_prefix, record, record_in
from nexus.runtime import Runtime


async def create_job(
    session: AsyncSession,
    media: MediaItem,
    kind: JobKind = JobKind.process,
    request: dict[str, Any] | None = None,
    message: str = "queued",
) -> MediaJob:
    job = MediaJob(
        media_id=media.id,
        owner_id=media.owner_id,
        workspace_id=media.workspace_id,
        workflow_id=media_workflow_id(media.id),
        kind=kind,
        request=request,
    )
    session.add(job)
    await session.flush()
    # `seq` is drawn by the database (an identity column); SQLModel's Field cannot mark it init=False.
    event = JobEvent(job_id=job.id, stage=MediaStatus.pending, progress=0, message=message)  # type: ignore[call-arg]
    await append(session, job.id, event)
    return job


class Busy(Exception):
    """The item cannot take this now (still processing, or a run in progress): the message says what to do."""


class AtCapacity(Exception):
    """The user has as many jobs in flight as they may: more would only lengthen the queue (answer 429)."""


async def check_capacity(session: AsyncSession, runtime: Runtime, user_id: uuid.UUID) -> None:
    """Refuse new work past the user's limit of jobs in flight. Serialized per user (a transaction-scoped lock
    held until the caller commits its new job), so a burst of uploads cannot all slip under the limit."""
    limit = runtime.settings.max_inflight_per_user
    await lock_for_transaction(session, f"ingest:{user_id}")
    inflight = (
        await session.execute(
            select(func.count()).where(col(MediaJob.owner_id) == user_id, col(MediaJob.stage).not_in(TERMINAL))
        )
    ).scalar_one()
    if inflight >= limit:
        raise AtCapacity(
            f"you have {inflight} items being processed (the limit is {limit}, NEXUS_MAX_INFLIGHT_PER_USER): "
            "try again when some have finished"
        )


async def retranscribe(
    client: Client, runtime: Runtime, session: AsyncSession, media: MediaItem, request: dict[str, Any]
) -> MediaJob:
    """Transcription and every stage after it again, as a new run of the media workflow with `request`'s options.

    The run writes to a draft; the item keeps its transcript, passages and vectors (and stays `completed` and
    searchable) until the new ones are complete, then they are swapped in one transaction. A failed or
    cancelled re-transcription leaves the item as it was."""
    if media.status != MediaStatus.completed:
        raise Busy(
            f"the item is {media.status}: only a completed item can be re-transcribed"
            + (" (retry its job instead)" if media.status in (MediaStatus.failed, MediaStatus.cancelled) else "")
        )
    await lock_for_transaction(session, f"transcript:{media.id}")  # two requests at once: one run
    await check_capacity(session, runtime, media.owner_id)
    if await unfinished_job(session, media.id) or await is_running(client, media_workflow_id(media.id)):
        raise Busy("this item is being processed already: wait for that run to end, or cancel it")
    job = await create_job(session, media, JobKind.retranscribe, request, "re-transcription requested")
    await session.commit()
    try:
        await start_pipeline(client, runtime, media, job)
    except Exception as exc:
        await record(runtime.engine, job.id, MediaStatus.failed, error=f"the re-transcription could not start: {exc}")
        raise exc if isinstance(exc, Unavailable) else Unavailable("Temporal", str(exc)) from exc
    return job


async def start_pipeline(client: Client, runtime: Runtime, media: MediaItem, job: MediaJob) -> None:
    inp = MediaPipelineInput(media_id=media.id, job_id=job.id, user_id=media.owner_id, queues=runtime.queues)
    await start_run(client, inp, job.workflow_id, *run_summary(media, job))


def run_summary(media: MediaItem, job: MediaJob) -> tuple[str, str]:
    """What the Temporal UI shows for a run: a one-line summary and details (Markdown). Titles and sources, never
    a secret: a URL loses its query string and credentials (a signed URL's token lives there)."""
    source = media.original_filename or str(media.source_type)
    if media.source_url:
        parts = urlsplit(media.source_url)
        source = f"{parts.hostname or ''}{parts.path}" if parts.scheme in ("http", "https") else str(media.source_type)
    verb = "Re-transcribe" if job.kind == JobKind.retranscribe else "Process"
    summary = ui_summary(f"{verb} {media.title or source}")
    details = "\n".join(
        [
            f"**{media.source_type}**: {source}",
            f"media `{media.id}` · job `{job.id}` · owner `{media.owner_id}`",
            *([f"options: {', '.join(f'{k}={v}' for k, v in job.request.items() if k != 'vocabulary')}"]
              if job.request else []),
        ]
    )  # fmt: skip
    return summary, details


async def start_run(
    client: Client, inp: MediaPipelineInput, workflow_id: str, summary: str | None = None, details: str | None = None
) -> WorkflowHandle[Any, PipelineResult]:
    """Start one run of the pipeline by name: a retry reuses the workflow id, and the run is searchable in the
    Temporal UI by user, media item and stage from its first moment."""
    return await client.start_workflow(
        MEDIA_PIPELINE_WORKFLOW,
        inp,
        id=workflow_id,
        task_queue=inp.queues.workflows,
        result_type=PipelineResult,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        rpc_timeout=RPC_TIMEOUT,
        static_summary=summary,
        static_details=details,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_USER_ID, str(inp.user_id)),
                SearchAttributePair(SA_MEDIA_ID, str(inp.media_id)),
                SearchAttributePair(SA_STAGE, MediaStatus.pending.value),
            ]
        ),
    )


async def latest_job(session: AsyncSession, media_id: uuid.UUID) -> MediaJob | None:
    return (
        await session.execute(
            select(MediaJob)
            .where(col(MediaJob.media_id) == media_id)
            .order_by(col(MediaJob.started_at).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def wait_closed(client: Client, workflow_id: str, timeout_s: float = 15) -> None:
    handle = client.get_workflow_handle(workflow_id)
    try:
        await asyncio.wait_for(handle.result(), timeout_s)
    except Exception:
        pass  # cancelled/failed/timed out: all we need is that it stopped, or that we tried long enough


async def retry(
    client: Client, runtime: Runtime, session: AsyncSession, job: MediaJob, *, within_limit: bool = True
) -> None:
    """A new run under the same workflow id. Activities find their finished outputs and skip them.

    The job moves to `pending` before the run starts (so the run's first event follows it); if Temporal refuses
    the start, the job goes back to where it was, with the reason, and the caller gets `Unavailable`: never a
    job left `pending` with no run behind it. A user's retry counts against their limit of jobs in flight like
    a new ingest (`AtCapacity`); an operator's bulk retry passes `within_limit=False`."""
    media = await session.get(MediaItem, job.media_id)
    assert media is not None
    # Under the item's transcript lock, and `pending` in the same transaction: a correction cannot slip in
    # between (the retried run's swap would erase it), nor a second retry or re-transcription.
    await lock_for_transaction(session, f"transcript:{media.id}")
    # Read again under the lock: a second retry at once (a double click, a user's and an operator's) waited here
    # while the first started the run; going on would fail to start it and mark the live run's job failed.
    await session.refresh(job)
    if MediaStatus(job.stage) not in (MediaStatus.failed, MediaStatus.cancelled):
        raise Busy(f"the job is {job.stage} now: another retry has just started it")
    if within_limit:
        await check_capacity(session, runtime, job.owner_id)
    if job.kind == JobKind.retranscribe and await _newer_job(session, job):
        raise Busy("a newer run of this item replaced this re-transcription: start a new one instead of retrying")
    previous, run = MediaStatus(job.stage), job.attempts + 1
    job.error = None
    job.finished_at = None
    media.error = None
    await record_in(session, job.id, MediaStatus.pending, message=f"retry requested (run {run})")
    await session.commit()
    try:
        await start_pipeline(client, runtime, media, job)
    except Exception as exc:
        await record(runtime.engine, job.id, previous, error=f"the retry could not start: {exc}")
        raise exc if isinstance(exc, Unavailable) else Unavailable("Temporal", str(exc)) from exc
    async with session_scope(runtime.engine) as s:
        await s.execute(update(MediaJob).where(col(MediaJob.id) == job.id).values(attempts=col(MediaJob.attempts) + 1))


async def _newer_job(session: AsyncSession, job: MediaJob) -> bool:
    newer = await session.execute(
        select(func.count()).where(col(MediaJob.media_id) == job.media_id, col(MediaJob.started_at) > job.started_at)
    )
    return bool(newer.scalar_one())


async def unfinished_job(session: AsyncSession, media_id: uuid.UUID) -> bool:
    """Whether any run of the item is queued or running (not only its latest job: an older one may be retried)."""
    found = await session.execute(
        select(func.count()).where(col(MediaJob.media_id) == media_id, col(MediaJob.stage).not_in(TERMINAL))
    )
    return bool(found.scalar_one())


STALE_AFTER = timedelta(minutes=2)
"""A job quiet this long is checked against Temporal (running steps report progress every second)."""


async def reconcile(client: Client, runtime: Runtime, job: MediaJob) -> MediaStatus | None:
    """Make a job that is not finished agree with its run in Temporal; returns the stage it moved to, if any."""
    if MediaStatus(job.stage).terminal:
        return None
    status = await run_status(client, job.workflow_id)
    if status == WorkflowExecutionStatus.RUNNING:
        return None
    if status is None:
        if utcnow() - job.updated_at < STALE_AFTER:
            return None  # just created or retried: the start may still be on its way
        stage, reason = MediaStatus.failed, "no run exists for this job in Temporal; retry it"
    elif status == WorkflowExecutionStatus.COMPLETED:
        result = await client.get_workflow_handle(job.workflow_id, result_type=PipelineResult).result(
            rpc_timeout=RPC_TIMEOUT
        )
        stage, reason = MediaStatus(result.status), ""
    else:
        cancelled, reason = ended_outside(status)
        stage = MediaStatus.cancelled if cancelled else MediaStatus.failed
    await record(runtime.engine, job.id, stage, error=reason or None, message="reconciled with Temporal")
    return stage


async def reconcile_stale(client: Client, runtime: Runtime, *, limit: int = 200) -> int:
    """One reconciliation pass over unfinished jobs that have been quiet for a while (the schedule runs it)."""
    async with session_scope(runtime.engine) as session:
        jobs = (
            await session.execute(
                select(MediaJob)
                .where(col(MediaJob.stage).not_in(TERMINAL), col(MediaJob.updated_at) < utcnow() - STALE_AFTER)
                .order_by(col(MediaJob.updated_at))
                .limit(limit)
            )
        ).scalars()
        quiet = list(jobs)
    return sum([await reconcile(client, runtime, job) is not None for job in quiet])


async def delete_media(client: Client, runtime: Runtime, session: AsyncSession, media: MediaItem) -> None:
    """Stop processing, then remove rows (segments, chunks, jobs cascade) and every stored object.

    Commits before deleting the objects: a commit that fails (the database gone for a moment) must leave the item
    whole, not listed with its files gone. A failure between the commit and the objects' deletion leaves objects
    with no row, which `sweep_orphans` removes."""
    workflow_id = media_workflow_id(media.id)
    if await cancel(client, workflow_id):
        await wait_closed(client, workflow_id)
    prefix = media_prefix(media.owner_id, media.id)
    await session.delete(media)
    await session.commit()
    await asyncio.to_thread(runtime.store.delete_prefix, prefix)


ORPHAN_GRACE = timedelta(hours=1)
"""Objects younger than this are left alone: an upload is stored moments before its row is committed."""


async def sweep_orphans(runtime: Runtime, *, grace: timedelta = ORPHAN_GRACE, dry_run: bool = False) -> int:
    """Delete stored objects of media items that no longer exist (a delete that raced a running step, a crash
    between writing and recording): the last line of "nothing stays behind for a deleted item". Returns the
    number of items whose objects were removed (with `dry_run`: would be; nothing is deleted)."""
    newest: dict[tuple[str, str], datetime] = {}
    for key, modified in await asyncio.to_thread(lambda: list(runtime.store.list_objects("users"))):
        parts = key.split("/")
        if len(parts) >= 4 and parts[0] == "users" and parts[2] == "media":
            item = (parts[1], parts[3])
            newest[item] = max(modified, newest.get(item, modified))
    cutoff = utcnow() - grace
    candidates = {item: at for item, at in newest.items() if at < cutoff}
    ids = set()
    for _owner, media in candidates:
        with contextlib.suppress(ValueError):
            ids.add(uuid.UUID(media))
    existing: set[uuid.UUID] = set()
    batch = sorted(ids)
    for start in range(0, len(batch), 1000):  # bounded IN lists, one short transaction each
        async with session_scope(runtime.engine) as session:
            query = select(col(MediaItem.id)).where(col(MediaItem.id).in_(batch[start : start + 1000]))
            existing.update((await session.execute(query)).scalars())
    swept = 0
    for owner, media in candidates:
        with contextlib.suppress(ValueError):
            if uuid.UUID(media) in existing:
                continue
        if not dry_run:
            await asyncio.to_thread(runtime.store.delete_prefix, f"users/{owner}/media/{media}")
        swept += 1
    return swept
