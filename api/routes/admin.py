"""Operator routes (the `admin` role): failed runs across every user, and retrying or cancelling many at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import AdminUser, RuntimeDep, TemporalDep
from models import MediaStatus
from nexus.llm import registry
from nexus.llm.models import embedding_identity
from nexus.media import operations
from nexus.memory.service import memory_count
from nexus.ops.schedules import list_schedules

router = APIRouter(prefix="/api/admin", tags=["admin"])


class JobQuery(BaseModel):
    status: Literal["failed", "cancelled", "running"] = "failed"
    since_hours: float | None = Field(default=None, gt=0, le=24 * 365, description="Changed within this many hours.")
    stage: MediaStatus | None = Field(
        default=None, description="failed/cancelled: the stage it stopped in; running: the stage it is in."
    )
    error_contains: str | None = Field(default=None, min_length=1, max_length=200)
    owner_id: uuid.UUID | None = None
    job_ids: list[uuid.UUID] | None = Field(default=None, max_length=500, description="Only these jobs.")
    limit: int = Field(default=500, ge=1, le=5000)

    def filter(self) -> operations.JobFilter:
        return operations.JobFilter(
            status=self.status,
            since=timedelta(hours=self.since_hours) if self.since_hours else None,
            stage=self.stage,
            error_contains=self.error_contains,
            owner_id=self.owner_id,
            job_ids=self.job_ids,
            limit=self.limit,
        )


class BulkRequest(JobQuery):
    dry_run: bool = Field(default=False, description="Only say which jobs match.")


class JobRow(BaseModel):
    id: uuid.UUID
    media_id: uuid.UUID
    owner_id: uuid.UUID
    title: str | None
    stage: str
    failed_stage: str | None = Field(description="The stage a failed or cancelled run stopped in.")
    error: str | None
    attempts: int
    updated_at: str


class BulkResult(BaseModel):
    dry_run: bool
    matched: list[JobRow]
    done: list[uuid.UUID] = Field(description="Jobs retried (or cancelled).")
    skipped: dict[str, str] = Field(description="Job id -> why it was left alone.")


def _rows(found: list[operations.JobMatch]) -> list[JobRow]:
    return [JobRow.model_validate(m, from_attributes=True) for m in found]


@router.get("/jobs")
async def list_jobs(_admin: AdminUser, runtime: RuntimeDep, q: Annotated[JobQuery, Query()]) -> list[JobRow]:
    """Runs across every user, by status, age, stage and error text: what a bulk retry or cancel would touch."""
    return _rows(await operations.matching(runtime.engine, q.filter()))


@router.post("/jobs/retry")
async def retry_jobs(_admin: AdminUser, body: BulkRequest, runtime: RuntimeDep, client: TemporalDep) -> BulkResult:
    """Retry every matching failed (or cancelled) run from the step that stopped it: finished downloads,
    transcriptions and LLM calls are reused, not repeated."""
    if body.status == "running":
        body = body.model_copy(update={"status": "failed"})
    found = await operations.matching(runtime.engine, body.filter())
    if body.dry_run:
        return BulkResult(dry_run=True, matched=_rows(found), done=[], skipped={})
    outcome = await operations.retry_all(client, runtime, found)
    return BulkResult(dry_run=False, matched=_rows(found), done=outcome.done, skipped=outcome.skipped)


@router.post("/jobs/cancel")
async def cancel_jobs(_admin: AdminUser, body: BulkRequest, runtime: RuntimeDep, client: TemporalDep) -> BulkResult:
    """Cancel every matching unfinished run (each records `cancelled` itself)."""
    found = await operations.matching(runtime.engine, body.model_copy(update={"status": "running"}).filter())
    if body.dry_run:
        return BulkResult(dry_run=True, matched=_rows(found), done=[], skipped={})
    outcome = await operations.cancel_all(client, found)
    return BulkResult(dry_run=False, matched=_rows(found), done=outcome.done, skipped=outcome.skipped)


class ModelRow(BaseModel):
    id: int
    name: str
    digest: str | None
    dims: int
    status: str = Field(description="building | active | retired")
    spec: str = Field(description="What loads it (NEXUS_EMBEDDING_MODEL's value; empty: the shipped model).")
    vectors: int = Field(description="Passages with a vector of this model.")
    missing: int = Field(description="Passages still without one (a building model's backfill progress).")
    memories: int
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    drop_after: datetime | None = Field(description="A retired model's vectors are dropped after this.")
    dropped_at: datetime | None


class EmbeddingsStatus(BaseModel):
    configured: str = Field(description="The model this API process is configured with (name@digest/dims).")
    active: str = Field(description="The model queries use: the index's active one.")
    models: list[ModelRow]


@router.get("/embeddings")
async def embeddings(_admin: AdminUser, runtime: RuntimeDep) -> EmbeddingsStatus:
    """The embedding models the search index knows: which one answers queries, and each one's vectors, passages
    still to embed (a re-embedding's progress) and memories."""
    identity = await asyncio.to_thread(embedding_identity, runtime.settings)
    states = await registry.states(runtime.engine)
    rows = []
    for st in states:
        memories = 0 if st.dropped_at else await memory_count(runtime.engine, st.id)
        fields = {k: v for k, v in vars(st).items()}
        rows.append(ModelRow(**fields, memories=memories))
    return EmbeddingsStatus(
        configured=str(identity), active=next(st.label for st in states if st.status == "active"), models=rows
    )


class ScheduleRow(BaseModel):
    id: str
    workflow: str
    every_hours: float
    paused: bool
    next_runs: list[datetime]
    runs_so_far: int


@router.get("/schedules")
async def schedules(_admin: AdminUser, runtime: RuntimeDep, client: TemporalDep) -> list[ScheduleRow]:
    """The Temporal Schedules (token-refresh sweep, re-embedding sweep, cleanup, ...): when each runs next. The
    workflows worker creates them at start; pause or trigger them in the Temporal UI or `nexus schedules`."""
    return [
        ScheduleRow(
            id=s.id,
            workflow=s.workflow,
            every_hours=s.every.total_seconds() / 3600,
            paused=s.paused,
            next_runs=s.next_runs,
            runs_so_far=s.recent_runs,
        )
        for s in await list_schedules(client, runtime)
    ]
