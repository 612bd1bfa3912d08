"""Jobs: status, ordered progress events (SSE and WebSocket), retry and cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, WebSocket, WebSocketDisconnect, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from api.deps import CurrentUser, RuntimeDep, SessionDep, TemporalDep
from models import JobEvent, MediaJob, MediaStatus
from nexus.core.db import session_scope
from nexus.identity.access import get_owned
from nexus.identity.service import authenticate_api_key
from nexus.media.repository import stream_events
from nexus.media.service import cancel, is_running, retry

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
ws_router = APIRouter(tags=["jobs"])


class JobOut(BaseModel):
    id: uuid.UUID
    media_id: uuid.UUID
    workflow_id: str
    stage: MediaStatus
    progress: int
    attempts: int
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


async def owned_job(job_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> MediaJob:
    """Resolved before the handler runs, so even a streaming route answers 404 instead of starting a stream."""
    job = await get_owned(session, MediaJob, user.id, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    return job


OwnedJob = Annotated[MediaJob, Depends(owned_job)]


@router.get("/{job_id}")
async def get_job(job: OwnedJob) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job: OwnedJob, session: SessionDep, runtime: RuntimeDep) -> AsyncIterator[ServerSentEvent]:
    await session.close()  # the stream polls with its own short sessions; hold no connection meanwhile
    async for event in stream_events(runtime.engine, job.id):
        yield ServerSentEvent(data=EventOut.of(event).model_dump(mode="json"), event=event.stage, id=str(event.seq))


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job: OwnedJob, session: SessionDep, client: TemporalDep, runtime: RuntimeDep) -> JobOut:
    if job.stage not in (MediaStatus.failed, MediaStatus.cancelled) or await is_running(client, job.workflow_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"only failed or cancelled jobs can be retried; this one is {job.stage}"
        )
    await retry(client, runtime, session, job)
    await session.refresh(job)
    return JobOut.model_validate(job, from_attributes=True)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_job(job: OwnedJob, client: TemporalDep) -> JobOut:
    if not await cancel(client, job.workflow_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job is not running (stage: {job.stage})")
    return JobOut.model_validate(job, from_attributes=True)


@ws_router.websocket("/ws/status/{job_id}")
async def job_status_ws(websocket: WebSocket, job_id: uuid.UUID) -> None:
    """Same events as the SSE stream. Browsers cannot set headers on a WebSocket: `?token=` is accepted too."""
    runtime = websocket.app.state.runtime
    auth = websocket.headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else websocket.query_params.get("token", "")
    async with session_scope(runtime.engine) as session:
        user = await authenticate_api_key(session, token)
        job = await get_owned(session, MediaJob, user.id, job_id) if user else None
    if user is None:
        await websocket.close(code=4401, reason="invalid or missing API key")
        return
    if job is None:
        await websocket.close(code=4404, reason="no such job")
        return
    await websocket.accept()
    try:
        async for event in stream_events(runtime.engine, job_id):
            await websocket.send_json(EventOut.of(event).model_dump(mode="json"))
        await websocket.close()
    except WebSocketDisconnect:
        pass
