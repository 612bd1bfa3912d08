"""Starting, cancelling, retrying and deleting media jobs: the API's verbs, kept out of the HTTP layer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError

from models import JobEvent, MediaItem, MediaJob, MediaStatus
from models.base import utcnow
from nexus.core.eventlog import append
from nexus.core.orchestration import (
    MEDIA_PIPELINE_WORKFLOW,
    SA_MEDIA_ID,
    SA_STAGE,
    SA_USER_ID,
    media_workflow_id,
)
from nexus.media.contracts import MediaPipelineInput, PipelineResult
from nexus.media.repository import media_prefix, record
from nexus.runtime import Runtime


async def create_job(session: AsyncSession, media: MediaItem) -> MediaJob:
    job = MediaJob(
        media_id=media.id,
        owner_id=media.owner_id,
        workspace_id=media.workspace_id,
        workflow_id=media_workflow_id(media.id),
    )
    session.add(job)
    await session.flush()
    await append(session, job.id, JobEvent(job_id=job.id, stage=MediaStatus.pending, progress=0, message="queued"))
    return job


async def start_pipeline(client: Client, runtime: Runtime, media: MediaItem, job: MediaJob) -> None:
    inp = MediaPipelineInput(media_id=media.id, job_id=job.id, user_id=media.owner_id, queues=runtime.queues)
    await start_run(client, inp, job.workflow_id)


async def start_run(client: Client, inp: MediaPipelineInput, workflow_id: str) -> WorkflowHandle[Any, PipelineResult]:
    """Start one run of the pipeline by name: a retry reuses the workflow id, and the run is searchable in the
    Temporal UI by user, media item and stage from its first moment."""
    return await client.start_workflow(
        MEDIA_PIPELINE_WORKFLOW,
        inp,
        id=workflow_id,
        task_queue=inp.queues.workflows,
        result_type=PipelineResult,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
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
            select(MediaJob).where(MediaJob.media_id == media_id).order_by(MediaJob.started_at.desc()).limit(1)
        )
    ).scalar_one_or_none()


async def is_running(client: Client, workflow_id: str) -> bool:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return desc.status == WorkflowExecutionStatus.RUNNING


async def cancel(client: Client, workflow_id: str) -> bool:
    """Request cancellation; the workflow records `cancelled` itself. False when nothing was running."""
    if not await is_running(client, workflow_id):
        return False
    await client.get_workflow_handle(workflow_id).cancel()
    return True


async def wait_closed(client: Client, workflow_id: str, timeout_s: float = 15) -> None:
    handle = client.get_workflow_handle(workflow_id)
    try:
        await asyncio.wait_for(handle.result(), timeout_s)
    except Exception:
        pass  # cancelled/failed/timed out: all we need is that it stopped, or that we tried long enough


async def retry(client: Client, runtime: Runtime, session: AsyncSession, job: MediaJob) -> None:
    """A new run under the same workflow id. Activities find their finished outputs and skip them."""
    media = await session.get(MediaItem, job.media_id)
    assert media is not None
    job.attempts += 1
    job.error = None
    job.finished_at = None
    job.updated_at = utcnow()
    media.error = None
    await session.flush()
    await session.commit()
    await record(runtime.engine, job.id, MediaStatus.pending, message=f"retry requested (run {job.attempts})")
    await start_pipeline(client, runtime, media, job)


async def delete_media(client: Client, runtime: Runtime, session: AsyncSession, media: MediaItem) -> None:
    """Stop processing, then remove rows (segments, chunks, jobs cascade) and every stored object."""
    workflow_id = media_workflow_id(media.id)
    if await cancel(client, workflow_id):
        await wait_closed(client, workflow_id)
    await session.delete(media)
    await session.flush()
    await asyncio.to_thread(runtime.store.delete_prefix, media_prefix(media.owner_id, media.id))
