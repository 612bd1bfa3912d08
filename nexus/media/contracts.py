"""Inputs and outputs of the media pipeline's workflow and activities: ids and small facts, never file bodies."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from nexus.core.orchestration import TaskQueues


class MediaPipelineInput(BaseModel):
    media_id: uuid.UUID
    job_id: uuid.UUID
    user_id: uuid.UUID
    queues: TaskQueues


class MediaRef(BaseModel):
    media_id: uuid.UUID
    job_id: uuid.UUID


class StageUpdate(BaseModel):
    job_id: uuid.UUID
    stage: str
    error: str | None = None
    error_type: str | None = None  # the failing activity's error type (e.g. BadInput), never parsed from `error`


class FetchResult(BaseModel):
    duration_s: float
    audio_key: str
    reused: bool


class DedupResult(BaseModel):
    duplicate_of: uuid.UUID | None
    ber: float | None


class TranscribeResult(BaseModel):
    segments: int
    language: str | None
    reused: bool


class EnrichResult(BaseModel):
    provider: str
    tags: list[str]
    reused: bool


class EmbedResult(BaseModel):
    chunks: int
    reused: bool


class PipelineResult(BaseModel):
    status: str
    duplicate_of: uuid.UUID | None = None


class MaintenanceInput(BaseModel):
    """Input of the maintenance workflows (reconcile jobs, sweep orphans): where their activities run."""

    queues: TaskQueues
