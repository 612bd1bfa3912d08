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
    """Input of the maintenance workflows (reconcile jobs, sweep orphans, cleanup): where their activities run."""

    queues: TaskQueues
    # Cleanup only: count what would be deleted and delete nothing. A default, so recorded histories still replay.
    dry_run: bool = False


class CleanupReport(BaseModel):
    """What one cleanup run deleted (with `dry_run`: would have deleted), per kind: the cleanup workflow's result."""

    dry_run: bool = False
    sessions: int = 0  # browser sessions past their absolute or idle lifetime, or of a deactivated user
    oauth_states: int = 0  # sign-in and connect requests past their expiry
    ws_tickets: int = 0  # WebSocket tickets past their expiry
    rate_limits: int = 0  # attempt counters of windows that have closed
    turn_events: int = 0  # old token events of finished chat turns (their terminal event is kept)
    orphaned_media: int = 0  # media items with stored objects but no row (objects removed per item)
    drafts: int = 0  # re-transcription drafts of runs that ended long ago

    @property
    def total(self) -> int:
        return sum(v for k, v in self.model_dump().items() if k != "dry_run")
