"""Media items, their processing jobs (with an ordered event log), transcripts and searchable chunks."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlmodel import Field

from models.base import OwnedModel, TimestampedModel, utcnow

EMBEDDING_DIMS = 384


class MediaStatus(enum.StrEnum):
    pending = "pending"
    extracting = "extracting"
    fingerprinting = "fingerprinting"
    transcribing = "transcribing"
    enriching = "enriching"
    embedding = "embedding"
    completed = "completed"
    duplicate = "duplicate"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = {MediaStatus.completed, MediaStatus.duplicate, MediaStatus.failed, MediaStatus.cancelled}


class SourceType(enum.StrEnum):
    url = "url"
    file = "file"
    mic = "mic"
    google_drive = "google_drive"


class MediaItem(OwnedModel, table=True):
    __tablename__ = "media_items"

    title: str | None = Field(default=None, max_length=500)
    source_type: SourceType = Field(sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    source_url: str | None = Field(default=None, sa_type=sa.Text)
    original_filename: str | None = Field(default=None, max_length=500)
    # Imported through a connected account (Google Drive): its tokens fetch the file; `source_url` names it.
    integration_id: uuid.UUID | None = Field(default=None, foreign_key="integrations.id", ondelete="SET NULL")
    status: MediaStatus = Field(
        default=MediaStatus.pending, sa_column=sa.Column(sa.String(20), nullable=False, index=True)
    )
    duration_s: float | None = None
    size_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    mime_type: str | None = Field(default=None, max_length=100)
    # The original has a picture (ffprobe found a video stream); None for rows fetched before it was recorded.
    has_video: bool | None = None
    original_key: str | None = Field(default=None, max_length=500)
    audio_key: str | None = Field(default=None, max_length=500)
    fingerprint: str | None = Field(default=None, sa_type=sa.Text)
    duplicate_of: uuid.UUID | None = Field(default=None, foreign_key="media_items.id", ondelete="SET NULL")
    duplicate_ber: float | None = None
    language: str | None = Field(default=None, max_length=16)
    # Seconds of speech per language detected (a recording may switch).
    languages: dict[str, float] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    # Names for speaker labels: {"S1": "Ada", ...}.
    speaker_names: dict[str, str] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    # Names a language model proposed from what was said ({"S1": "Ada"}): suggestions, until a user names them.
    speaker_suggestions: dict[str, str] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    # What transcription was asked for (language, vocabulary, prompt) and what it did (models, warnings).
    transcription: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(JSONB, nullable=False, server_default="{}")
    )
    summary: str | None = Field(default=None, sa_type=sa.Text)
    tags: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False))
    enrichment_provider: str | None = Field(default=None, max_length=50)
    enrichment_model: str | None = Field(default=None, max_length=100)
    error: str | None = Field(default=None, sa_type=sa.Text)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


class JobKind(enum.StrEnum):
    process = "process"  # the item's first run through the pipeline
    retranscribe = "retranscribe"  # transcription and every stage after it again, swapped in when complete


class MediaJob(OwnedModel, table=True):
    """A run of the pipeline for a media item: its processing, then any re-transcriptions. `attempts` counts
    executions that really ran: 1, plus every automatic retry of a step (a lost worker, a transient failure), plus
    every user retry; `stage_attempt` is the Temporal attempt of the current stage's step."""

    __tablename__ = "media_jobs"

    media_id: uuid.UUID = Field(foreign_key="media_items.id", index=True, ondelete="CASCADE")
    kind: JobKind = Field(
        default=JobKind.process, sa_column=sa.Column(sa.String(20), nullable=False, server_default="process")
    )
    # A re-transcription's options (model, language, speakers, vocabulary, prompt), checked when it was asked for.
    request: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    workflow_id: str = Field(max_length=200)
    stage: MediaStatus = Field(default=MediaStatus.pending, sa_column=sa.Column(sa.String(20), nullable=False))
    progress: int = 0
    attempts: int = 1
    stage_attempt: int = 1
    error: str | None = Field(default=None, sa_type=sa.Text)
    started_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


class TranscriptDraft(TimestampedModel, table=True):
    """A re-transcription's results before they replace the item's: what each finished stage produced, so a
    retried step reuses it, and nothing a reader can see changes until the swap (`applied_at`)."""

    __tablename__ = "transcript_drafts"

    job_id: uuid.UUID = Field(foreign_key="media_jobs.id", unique=True, ondelete="CASCADE")
    media_id: uuid.UUID = Field(foreign_key="media_items.id", index=True, ondelete="CASCADE")
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    transcript: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    enrichment: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    applied_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class JobEvent(TimestampedModel, table=True):
    """Append-only progress log; `seq` orders events so WebSocket/SSE clients can resume from a cursor."""

    __tablename__ = "job_events"
    # Metrics and cleanup read recent events across all jobs.
    __table_args__ = (sa.Index("ix_job_events_created_at", "created_at"),)

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, sa.Identity(), unique=True, nullable=False))
    job_id: uuid.UUID = Field(foreign_key="media_jobs.id", index=True, ondelete="CASCADE")
    stage: str = Field(max_length=20)
    progress: int = 0
    terminal: bool = False
    message: str | None = Field(default=None, sa_type=sa.Text)


class TranscriptSegment(TimestampedModel, table=True):
    __tablename__ = "transcript_segments"
    __table_args__ = (sa.UniqueConstraint("media_id", "idx"),)

    media_id: uuid.UUID = Field(foreign_key="media_items.id", index=True, ondelete="CASCADE")
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    idx: int
    start_s: float
    end_s: float
    speaker: str | None = Field(default=None, max_length=100)
    language: str | None = Field(default=None, max_length=16)
    text: str = Field(sa_type=sa.Text)
    # What the transcriber heard, kept when a user corrects `text`.
    original_text: str | None = Field(default=None, sa_type=sa.Text)
    # English translation of speech in another language (Whisper's translate task), when asked for.
    translation: str | None = Field(default=None, sa_type=sa.Text)
    # Word timings: [[word, start_s, end_s, probability], ...] (compact: an hour holds ~10,000 words).
    words: list[list[Any]] = Field(
        default_factory=list, sa_column=sa.Column(JSONB, nullable=False, server_default="[]")
    )


class MediaChunk(TimestampedModel, table=True):
    """A passage of transcript with its full-text vector, for hybrid search and citations.

    Its embedding is in the vector table of each embedding model that has one (`chunk_vectors_<model id>`, see
    nexus.llm.registry): a pgvector index needs one fixed dimension, and several models coexist while the archive
    is re-embedded."""

    __tablename__ = "media_chunks"
    __table_args__ = (
        sa.UniqueConstraint("media_id", "idx"),
        sa.Index("ix_media_chunks_tsv", "tsv", postgresql_using="gin"),
    )

    media_id: uuid.UUID = Field(foreign_key="media_items.id", index=True, ondelete="CASCADE")
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    idx: int
    start_s: float
    end_s: float
    text: str = Field(sa_type=sa.Text)
    # "transcript", or "translation": a passage of the English translation, at the same seconds.
    track: str = Field(
        default="transcript", sa_column=sa.Column(sa.String(16), nullable=False, server_default="transcript")
    )
    tsv: str | None = Field(
        default=None,
        sa_column=sa.Column(TSVECTOR, sa.Computed("to_tsvector('english', text)", persisted=True)),
    )
