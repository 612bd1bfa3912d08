"""The job record and its ordered event log: the one place stage/progress is written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import overload

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from models import (
    JobEvent,
    JobKind,
    MediaChunk,
    MediaItem,
    MediaJob,
    MediaStatus,
    TranscriptDraft,
    TranscriptSegment,
)
from models.base import new_id, utcnow
from nexus.core.db import lock_for_transaction, outlasting_outages, session_scope
from nexus.core.eventlog import append, follow
from nexus.llm import registry
from nexus.llm.providers import Enrichment
from nexus.llm.registry import Vectors
from nexus.media.chunking import Passage, turns_text
from nexus.media.fingerprint import duration_window
from nexus.media.transcribe import Transcript

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
    attempt: int | None = None,
) -> None:
    """Move the job (and its media item) to `stage` at `fraction` done, and append an event, atomically.

    Progress never goes backwards within a run (a retried step restarts its own count at 0; the client keeps
    seeing the furthest point reached), and `attempt`, the Temporal attempt of the step reporting, counts every
    re-execution of a step in `attempts`: a worker lost mid-transcription shows as a second attempt."""
    async with session_scope(engine) as session:
        await record_in(session, job_id, stage, fraction, message=message, error=error, attempt=attempt)


async def record_in(
    session: AsyncSession,
    job_id: uuid.UUID,
    stage: MediaStatus,
    fraction: float = 0.0,
    *,
    message: str | None = None,
    error: str | None = None,
    attempt: int | None = None,
) -> None:
    """`record` in the caller's transaction (a retry moves to `pending` under the item's lock with its checks)."""
    progress = overall_progress(stage, fraction)
    terminal = stage.terminal
    job = (
        await session.execute(select(MediaJob).where(col(MediaJob.id) == job_id).with_for_update())
    ).scalar_one_or_none()
    if job is None:
        return  # deleted meanwhile; nothing to report to
    if stage is not MediaStatus.pending and not terminal:  # `pending` starts a new run from 0
        progress = max(progress, job.progress)
    values: dict[str, object] = {"stage": stage, "progress": progress, "updated_at": utcnow()}
    if stage != job.stage:
        values["stage_attempt"] = attempt or 1
    elif attempt is not None and attempt > job.stage_attempt:
        values["stage_attempt"] = attempt
        values["attempts"] = job.attempts + attempt - job.stage_attempt
        message = message or f"{stage}: attempt {attempt} (the previous one was lost or failed)"
    if terminal:
        values["finished_at"] = utcnow()
        values["error"] = error
    await session.execute(update(MediaJob).where(col(MediaJob.id) == job_id).values(**values))
    if job.kind == JobKind.process:  # a re-transcription leaves the item completed (and its transcript) as is
        media_values: dict[str, object] = {"status": stage, "updated_at": utcnow()}
        if terminal:
            media_values["error"] = error
        await session.execute(update(MediaItem).where(col(MediaItem.id) == job.media_id).values(**media_values))
    # `seq` is drawn by the database (an identity column); SQLModel's Field cannot mark it init=False.
    event = JobEvent(  # type: ignore[call-arg]
        job_id=job_id, stage=stage, progress=progress, terminal=terminal, message=error or message
    )
    await append(session, job_id, event)


async def stream_events(engine: AsyncEngine, job_id: uuid.UUID) -> AsyncIterator[JobEvent]:
    """The current run's events in order, then new ones, until a terminal one. A run starts at its latest
    `pending` event (job creation or a retry), so a retried job streams the new run."""
    async with session_scope(engine) as session:
        start = (
            await session.execute(
                select(func.max(JobEvent.seq)).where(
                    col(JobEvent.job_id) == job_id, col(JobEvent.stage) == MediaStatus.pending
                )
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


# --- pipeline reads and writes: each its own short transaction, so no connection is held across slow work ---


@overload
def _clip(value: str, limit: int) -> str: ...
@overload
def _clip(value: str | None, limit: int) -> str | None: ...
def _clip(value: str | None, limit: int) -> str | None:
    """Values from tools and models are clipped to their column instead of failing the step after the work."""
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


async def get_media(engine: AsyncEngine, media_id: uuid.UUID) -> MediaItem | None:
    async with session_scope(engine) as session:
        return await session.get(MediaItem, media_id)


async def media_of_job(engine: AsyncEngine, job_id: uuid.UUID) -> MediaItem | None:
    async with session_scope(engine) as session:
        job = await session.get(MediaJob, job_id)
        return await session.get(MediaItem, job.media_id) if job else None


async def _update_media(engine: AsyncEngine, media_id: uuid.UUID, **values: object) -> bool:
    """False when the item no longer exists (deleted meanwhile)."""
    async with session_scope(engine) as session:
        result = await session.execute(
            update(MediaItem).where(col(MediaItem.id) == media_id).values(**values, updated_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


@outlasting_outages
async def store_audio(
    engine: AsyncEngine,
    media_id: uuid.UUID,
    *,
    original_key: str,
    audio_key: str,
    duration_s: float,
    size_bytes: int,
    mime_type: str,
    has_video: bool,
) -> bool:
    """False when the item was deleted meanwhile: the caller takes back what it wrote."""
    return await _update_media(
        engine,
        media_id,
        original_key=original_key,
        audio_key=audio_key,
        duration_s=duration_s,
        size_bytes=size_bytes,
        mime_type=_clip(mime_type, 100),
        has_video=has_video,
    )


async def forget_objects(engine: AsyncEngine, media_id: uuid.UUID) -> None:
    await _update_media(engine, media_id, original_key=None, audio_key=None)


Match = Callable[[float | None, str], Awaitable[tuple[bool, float]]]


@outlasting_outages
async def settle_duplicate(
    engine: AsyncEngine, media: MediaItem, encoded: str, match: Match
) -> tuple[uuid.UUID, float] | None:
    """Decide once whether `media` repeats an item of the same owner, and store the fingerprint with the decision.

    Decisions are serialized per owner (a transaction-scoped advisory lock), and an item's fingerprint becomes
    visible only with its decision: so of several identical copies submitted at once exactly one is the
    original, whichever is decided first, and every other copy finds it. Items far longer or shorter cannot
    match (see `fingerprint.is_near_duplicate`), so they are filtered here instead of loaded."""
    query = select(col(MediaItem.id), col(MediaItem.duration_s), col(MediaItem.fingerprint)).where(
        col(MediaItem.owner_id) == media.owner_id,
        col(MediaItem.id) != media.id,
        col(MediaItem.fingerprint).is_not(None),
        col(MediaItem.duplicate_of).is_(None),
        col(MediaItem.status).not_in([MediaStatus.duplicate, MediaStatus.failed, MediaStatus.cancelled]),
    )
    if media.duration_s:
        lo, hi = duration_window(media.duration_s)
        query = query.where(col(MediaItem.duration_s).between(lo, hi))
    async with session_scope(engine) as session:
        await lock_for_transaction(session, f"dedup:{media.owner_id}")
        found: tuple[uuid.UUID, float] | None = None
        for other_id, other_duration, other_fp in (
            await session.execute(query.order_by(col(MediaItem.created_at)))
        ).all():
            assert other_fp is not None  # the query selects fingerprinted items only
            same, ber = await match(other_duration, other_fp)
            if same:
                found = (other_id, ber)
                break
        values: dict[str, object] = {"fingerprint": encoded, "updated_at": utcnow()}
        if found:
            values |= {"duplicate_of": found[0], "duplicate_ber": found[1]}
        await session.execute(update(MediaItem).where(col(MediaItem.id) == media.id).values(**values))
    return found


async def count_segments(engine: AsyncEngine, media_id: uuid.UUID) -> int:
    async with session_scope(engine) as session:
        return (
            await session.execute(select(func.count()).where(col(TranscriptSegment.media_id) == media_id))
        ).scalar_one()


@outlasting_outages
async def store_transcript(engine: AsyncEngine, media: MediaItem, transcript: Transcript) -> None:
    """All segments in one transaction; the (media_id, idx) unique key stops a racing attempt from doubling them."""
    async with session_scope(engine) as session:
        session.add_all(_segment_rows(media, transcript))
        done = {"models": transcript.models, "warnings": transcript.warnings}
        await session.execute(
            update(MediaItem)
            .where(col(MediaItem.id) == media.id)
            .values(
                language=_clip(transcript.language, 16),
                languages=transcript.languages,
                transcription=MediaItem.transcription.op("||")(done),  # type: ignore[attr-defined]
                updated_at=utcnow(),
            )
        )


def _segment_rows(media: MediaItem, transcript: Transcript) -> list[TranscriptSegment]:
    return [
        TranscriptSegment(
            media_id=media.id,
            owner_id=media.owner_id,
            idx=i,
            start_s=seg.start,
            end_s=seg.end,
            speaker=_clip(seg.speaker, 100),
            language=_clip(seg.language, 16),
            text=seg.text,
            words=seg.word_rows(),
            translation=seg.translation,
        )
        for i, seg in enumerate(transcript.segments)
    ]


async def transcript_text(engine: AsyncEngine, media_id: uuid.UUID) -> str:
    """What enrichment reads (see `chunking.turns_text`)."""
    async with session_scope(engine) as session:
        rows = await session.execute(
            select(col(TranscriptSegment.speaker), col(TranscriptSegment.text))
            .where(col(TranscriptSegment.media_id) == media_id)
            .order_by(col(TranscriptSegment.idx))
        )
        return turns_text([(r[0], r[1]) for r in rows.all()])


async def segment_texts(engine: AsyncEngine, media_id: uuid.UUID) -> list[tuple[float, float, str, str | None]]:
    """(start, end, text, English translation or None) of each segment, in order."""
    async with session_scope(engine) as session:
        rows = await session.execute(
            select(
                col(TranscriptSegment.start_s),
                col(TranscriptSegment.end_s),
                col(TranscriptSegment.text),
                col(TranscriptSegment.translation),
            )
            .where(col(TranscriptSegment.media_id) == media_id)
            .order_by(col(TranscriptSegment.idx))
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


@outlasting_outages
async def store_enrichment(engine: AsyncEngine, media: MediaItem, result: Enrichment) -> None:
    await _update_media(
        engine,
        media.id,
        title=media.title or _clip(result.title, 500),
        summary=result.summary,
        tags=[t[:40] for t in result.tags],
        speaker_suggestions=result.speakers,
        enrichment_provider=_clip(result.provider, 50),
        enrichment_model=_clip(result.model, 100),
    )


async def count_chunks(engine: AsyncEngine, media_id: uuid.UUID) -> int:
    async with session_scope(engine) as session:
        return (await session.execute(select(func.count()).where(col(MediaChunk.media_id) == media_id))).scalar_one()


@outlasting_outages
async def store_chunks(engine: AsyncEngine, media: MediaItem, passages: list[Passage], vectors: Vectors) -> None:
    """Like the transcript: one transaction, and the (media_id, idx) unique key stops a racing attempt."""
    async with session_scope(engine) as session:
        await add_chunks(session, media, passages, vectors)


async def add_chunks(
    session: AsyncSession, media: MediaItem, passages: list[Passage], vectors: Vectors
) -> list[MediaChunk]:
    """The item's passages, and their vectors in each indexed model's table (`Runtime.index_vectors`), in the
    caller's transaction (the pipeline's embed step, a re-transcription's swap and corrections store these)."""
    rows = [
        MediaChunk(
            media_id=media.id,
            owner_id=media.owner_id,
            idx=i,
            start_s=passage.start_s,
            end_s=passage.end_s,
            text=passage.text,
            track=passage.track,
        )
        for i, passage in enumerate(passages)
    ]
    session.add_all(rows)
    await session.flush()
    await registry.add_vectors(session, rows, vectors)
    return rows


# --- re-transcription: results wait in a draft, then replace the item's in one transaction ---


async def get_job(engine: AsyncEngine, job_id: uuid.UUID) -> MediaJob | None:
    async with session_scope(engine) as session:
        return await session.get(MediaJob, job_id)


@outlasting_outages
async def draft_for(engine: AsyncEngine, job: MediaJob) -> TranscriptDraft:
    """The re-transcription's draft, created on first use (a retried step finds what earlier attempts stored)."""
    async with session_scope(engine) as session:
        stmt = insert(TranscriptDraft).values(id=new_id(), job_id=job.id, media_id=job.media_id, owner_id=job.owner_id)
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["job_id"]))
        draft = (
            await session.execute(select(TranscriptDraft).where(col(TranscriptDraft.job_id) == job.id))
        ).scalar_one()
        return draft


@outlasting_outages
async def update_draft(engine: AsyncEngine, job_id: uuid.UUID, **values: object) -> None:
    async with session_scope(engine) as session:
        await session.execute(update(TranscriptDraft).where(col(TranscriptDraft.job_id) == job_id).values(**values))


@outlasting_outages
async def apply_draft(
    engine: AsyncEngine,
    media: MediaItem,
    job: MediaJob,
    transcript: Transcript,
    enrichment: Enrichment | None,
    passages: list[Passage],
    vectors: Vectors,
) -> bool:
    """Swap the re-transcription in: segments, passages and vectors, language, what was applied, summary and
    tags, in one transaction, so a search sees the old item or the new one, never a mix. Speaker names are
    cleared (the new labels need not mean the same people). False when it was already applied (a retry)."""
    async with session_scope(engine) as session:
        await lock_for_transaction(session, f"transcript:{media.id}")  # not beside a correction of the item
        draft = (
            await session.execute(
                select(TranscriptDraft).where(col(TranscriptDraft.job_id) == job.id).with_for_update()
            )
        ).scalar_one()
        if draft.applied_at is not None:
            return False
        await session.execute(delete(TranscriptSegment).where(col(TranscriptSegment.media_id) == media.id))
        await session.execute(delete(MediaChunk).where(col(MediaChunk.media_id) == media.id))
        session.add_all(_segment_rows(media, transcript))
        await add_chunks(session, media, passages, vectors)
        values: dict[str, object] = {
            "language": _clip(transcript.language, 16),
            "languages": transcript.languages,
            "transcription": {**(job.request or {}), "models": transcript.models, "warnings": transcript.warnings},
            "speaker_names": {},
            "speaker_suggestions": {},
            "updated_at": utcnow(),
        }
        if enrichment is not None:
            values |= {
                "summary": enrichment.summary,
                "tags": [t[:40] for t in enrichment.tags],
                "speaker_suggestions": enrichment.speakers,
                "enrichment_provider": _clip(enrichment.provider, 50),
                "enrichment_model": _clip(enrichment.model, 100),
            }
        await session.execute(update(MediaItem).where(col(MediaItem.id) == media.id).values(**values))
        draft.applied_at = utcnow()
        draft.transcript = None  # the item's segments hold it now
        return True
