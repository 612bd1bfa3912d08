"""Jobs: status, ordered progress events (SSE and WebSocket), retry and cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from api.deps import ReadableJob, RuntimeDep, SessionDep, TemporalDep, WritableJob
from models import JobEvent, JobKind, MediaStatus
from nexus.core.temporal import cancel, is_running
from nexus.media.repository import stream_events
from nexus.media.service import reconcile, retry

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
ws_router = APIRouter(tags=["jobs"])


class JobOut(BaseModel):
    id: uuid.UUID
    media_id: uuid.UUID
    workflow_id: str
    kind: JobKind = Field(description="`process` (the item's first run) or `retranscribe`")
    request: dict[str, Any] | None = Field(description="A re-transcription's options")
    stage: MediaStatus
    progress: int
    attempts: int = Field(description="executions that ran: 1 + automatic retries of a step + user retries")
    stage_attempt: int = Field(description="the attempt of the current stage's step (1 unless it was retried)")
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class EventOut(BaseModel):
    seq: int
    stage: str
    progress: int
    terminal: bool
    message: str | None
    at: datetime

    @classmethod
    def of(cls, e: JobEvent) -> EventOut:
        return cls(
            seq=e.seq, stage=e.stage, progress=e.progress, terminal=e.terminal, message=e.message, at=e.created_at
        )


@router.get("/{job_id}")
async def get_job(job: ReadableJob) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job: ReadableJob, runtime: RuntimeDep) -> AsyncIterator[ServerSentEvent]:
    # The request's session is committed and closed before a stream starts; the stream reads with short
    # sessions of its own, so a slow client never pins a pooled connection.
    async for event in stream_events(runtime.engine, job.id):
        yield ServerSentEvent(data=EventOut.of(event).model_dump(mode="json"), event=event.stage, id=str(event.seq))


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job: WritableJob, session: SessionDep, client: TemporalDep, runtime: RuntimeDep) -> JobOut:
    if await reconcile(client, runtime, job):  # a run that ended behind the job's back: catch up first
        await session.refresh(job)
    if job.stage not in (MediaStatus.failed, MediaStatus.cancelled) or await is_running(client, job.workflow_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"only failed or cancelled jobs can be retried; this one is {job.stage}"
        )
    await retry(client, runtime, session, job)  # Busy (a newer run replaced it): 409
    await session.refresh(job)
    return JobOut.model_validate(job, from_attributes=True)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_job(job: WritableJob, client: TemporalDep) -> JobOut:
    if not await cancel(client, job.workflow_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job is not running (stage: {job.stage})")
    return JobOut.model_validate(job, from_attributes=True)


@ws_router.websocket("/ws/status/{job_id}")
async def job_status_ws(websocket: WebSocket, job: ReadableJob, session: SessionDep, runtime: RuntimeDep) -> None:
    """Same events as the SSE stream. Browsers cannot set headers on a WebSocket: `?token=` is accepted too.
    Refusals close with 4401 (no or bad key) or 4404 (no such job)."""
    await session.close()  # the stream reads with short sessions of its own; hold no pooled connection meanwhile
    await websocket.accept()
    try:
        async for event in stream_events(runtime.engine, job.id):
            await websocket.send_json(EventOut.of(event).model_dump(mode="json"))
        await websocket.close()
    except WebSocketDisconnect:
        pass
