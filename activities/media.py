"""Media pipeline activities. Each is idempotent: re-running it for the same media id reuses what is stored.

Files travel between machines only through object storage; each activity downloads what it needs into a
private temp dir and removes it when done, so a failure leaves no stray files behind.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models import MediaChunk, MediaItem, MediaStatus, SourceType, TranscriptSegment
from models.base import utcnow
from nexus.db import session_scope
from nexus.media import BadInput
from nexus.media.chunking import chunk_segments
from nexus.media.fetch import TransientFetchError, check_url, download, to_speech_wav, validate_media
from nexus.media.fingerprint import Fingerprint, fingerprint_file, is_near_duplicate
from nexus.media.jobs import media_prefix, record
from nexus.providers.llm import ProviderError, enrichment_provider
from nexus.runtime import Runtime
from workflows.media_types import (
    DedupResult,
    EmbedResult,
    EnrichResult,
    FetchResult,
    MediaRef,
    StageUpdate,
    TranscribeResult,
)

TICK_S = 1.0


@contextmanager
def scratch_dir(prefix: str):
    path = Path(tempfile.mkdtemp(prefix=f"nexus-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run_blocking(
    fn: Callable[..., Any], *args: Any, on_progress: Callable[[float], Awaitable[None]] | None = None
) -> Any:
    """Run blocking work in a thread while this coroutine heartbeats every second with the latest progress.

    `fn` receives a `progress(fraction)` callback as its last argument. Heartbeats keep flowing even while one
    long step (a Whisper segment, a download) is running, so only a dead worker trips the heartbeat timeout.
    """
    latest: list[float] = [0.0]
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, lambda f: latest.__setitem__(0, f)))
    reported = -1.0
    while True:
        done, _ = await asyncio.wait({task}, timeout=TICK_S)
        activity.heartbeat(latest[0])
        if on_progress and latest[0] != reported:
            reported = latest[0]
            await on_progress(reported)
        if done:
            return task.result()


class MediaActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.embedder = runtime.embedder

    async def _media(self, media_id: uuid.UUID) -> MediaItem:
        async with session_scope(self.rt.engine) as session:
            media = await session.get(MediaItem, media_id)
        if media is None:
            raise BadInput("the media item was deleted")
        return media

    async def _progress(self, job_id: uuid.UUID, stage: MediaStatus) -> Callable[[float], Awaitable[None]]:
        async def report(fraction: float) -> None:
            await record(self.rt.engine, job_id, stage, fraction)

        return report

    # --- bookkeeping ---------------------------------------------------------------------------------------

    @activity.defn(name="media.set_stage")
    async def set_stage(self, update_: StageUpdate) -> None:
        stage = MediaStatus(update_.stage)
        attempt = activity.info().attempt
        await record(
            self.rt.engine,
            update_.job_id,
            stage,
            message=f"attempt {attempt}" if attempt > 1 else None,
            error=update_.error,
        )
        if stage is MediaStatus.failed and update_.error and update_.error.startswith("BadInput"):
            await self._discard_objects(update_.job_id)

    async def _discard_objects(self, job_id: uuid.UUID) -> None:
        """Bad input cannot be retried into success: drop what was stored for it so nothing is stranded."""
        from models import MediaJob

        async with session_scope(self.rt.engine) as session:
            job = await session.get(MediaJob, job_id)
            if job is None:
                return
            media = await session.get(MediaItem, job.media_id)
            if media is None:
                return
            await asyncio.to_thread(self.rt.store.delete_prefix, media_prefix(media.owner_id, media.id))
            media.original_key = media.audio_key = None

    # --- cpu -----------------------------------------------------------------------------------------------

    @activity.defn(name="media.fetch")
    async def fetch_media(self, ref: MediaRef) -> FetchResult:
        media = await self._media(ref.media_id)
        store, settings = self.rt.store, self.rt.settings
        if media.audio_key and media.duration_s and await asyncio.to_thread(store.exists, media.audio_key):
            return FetchResult(duration_s=media.duration_s, audio_key=media.audio_key, reused=True)
        prefix = media_prefix(media.owner_id, media.id)
        max_bytes = int(settings.max_media_mb * 1024 * 1024)
        with scratch_dir("fetch") as tmp:
            if media.source_type == SourceType.url:
                assert media.source_url
                await asyncio.to_thread(check_url, media.source_url, allow_private=settings.allow_private_urls)

                def fetch(progress: Callable[[float], None]) -> Path:
                    return download(
                        media.source_url or "",
                        tmp,
                        max_bytes=max_bytes,
                        allow_private=settings.allow_private_urls,
                        on_progress=lambda done, total: progress(0.9 * done / total if total else 0.0),
                    )

                try:
                    original = await run_blocking(
                        fetch, on_progress=await self._progress(ref.job_id, MediaStatus.extracting)
                    )
                except TransientFetchError as exc:
                    raise ApplicationError(str(exc), type="TransientFetchError") from exc
                original_key = f"{prefix}/original{original.suffix or '.bin'}"
            else:
                if not media.original_key:
                    raise BadInput("the upload is missing from storage")
                original = tmp / f"original{Path(media.original_key).suffix}"
                await asyncio.to_thread(store.get_file, media.original_key, original)
                original_key = media.original_key
            info = await asyncio.to_thread(
                validate_media, original, max_bytes=max_bytes, max_minutes=settings.max_media_minutes
            )
            wav = tmp / "audio.wav"
            await asyncio.to_thread(to_speech_wav, original, wav)
            audio_key = f"{prefix}/audio.wav"
            if original_key != media.original_key:
                await asyncio.to_thread(store.put_file, original_key, original)
            await asyncio.to_thread(store.put_file, audio_key, wav, "audio/wav")
            size = original.stat().st_size
        async with session_scope(self.rt.engine) as session:
            await session.execute(
                update(MediaItem)
                .where(MediaItem.id == media.id)
                .values(
                    original_key=original_key,
                    audio_key=audio_key,
                    duration_s=info.duration_s,
                    size_bytes=size,
                    mime_type=info.format_name[:100],
                    updated_at=utcnow(),
                )
            )
        return FetchResult(duration_s=info.duration_s, audio_key=audio_key, reused=False)

    @activity.defn(name="media.fingerprint")
    async def fingerprint_media(self, ref: MediaRef) -> DedupResult:
        media = await self._media(ref.media_id)
        if media.fingerprint and media.duration_s:
            fp = Fingerprint(media.duration_s, media.fingerprint)
        else:
            with scratch_dir("fp") as tmp:
                wav = tmp / "audio.wav"
                await asyncio.to_thread(self.rt.store.get_file, media.audio_key or "", wav)
                fp = await asyncio.to_thread(fingerprint_file, wav)
            async with session_scope(self.rt.engine) as session:
                await session.execute(update(MediaItem).where(MediaItem.id == media.id).values(fingerprint=fp.encoded))
        # Only earlier items of the same owner can be the original; two copies ingested at once do not
        # mark each other.
        async with session_scope(self.rt.engine) as session:
            candidates = (
                await session.execute(
                    select(MediaItem.id, MediaItem.duration_s, MediaItem.fingerprint)
                    .where(
                        MediaItem.owner_id == media.owner_id,
                        MediaItem.id != media.id,
                        MediaItem.fingerprint.is_not(None),
                        MediaItem.created_at < media.created_at,
                        MediaItem.status.not_in([MediaStatus.duplicate, MediaStatus.failed, MediaStatus.cancelled]),
                    )
                    .order_by(MediaItem.created_at)
                )
            ).all()
        for other_id, other_duration, other_fp in candidates:
            same, ber = await asyncio.to_thread(is_near_duplicate, fp, Fingerprint(other_duration or 0, other_fp))
            if same:
                async with session_scope(self.rt.engine) as session:
                    await session.execute(
                        update(MediaItem)
                        .where(MediaItem.id == media.id)
                        .values(duplicate_of=other_id, duplicate_ber=ber, updated_at=utcnow())
                    )
                return DedupResult(duplicate_of=other_id, ber=ber)
        return DedupResult(duplicate_of=None, ber=None)

    @activity.defn(name="media.embed")
    async def embed_media(self, ref: MediaRef) -> EmbedResult:
        media = await self._media(ref.media_id)
        async with session_scope(self.rt.engine) as session:
            existing = (await session.execute(select(func.count()).where(MediaChunk.media_id == media.id))).scalar_one()
            if existing:
                return EmbedResult(chunks=existing, reused=True)
            rows = (
                await session.execute(
                    select(TranscriptSegment.start_s, TranscriptSegment.end_s, TranscriptSegment.text)
                    .where(TranscriptSegment.media_id == media.id)
                    .order_by(TranscriptSegment.idx)
                )
            ).all()
        passages = chunk_segments([(r[0], r[1], r[2]) for r in rows])
        vectors = await asyncio.to_thread(self.embedder.embed, [p.text for p in passages])
        # Like the transcript: one transaction, and the (media_id, idx) unique key stops a racing attempt.
        async with session_scope(self.rt.engine) as session:
            for i, (passage, vector) in enumerate(zip(passages, vectors, strict=True)):
                session.add(
                    MediaChunk(
                        media_id=media.id,
                        owner_id=media.owner_id,
                        idx=i,
                        start_s=passage.start_s,
                        end_s=passage.end_s,
                        text=passage.text,
                        embedding=vector.tolist(),
                        embedding_model=self.embedder.model_name,
                        dims=len(vector),
                    )
                )
        return EmbedResult(chunks=len(passages), reused=False)

    # --- gpu -----------------------------------------------------------------------------------------------

    @activity.defn(name="media.transcribe")
    async def transcribe_media(self, ref: MediaRef) -> TranscribeResult:
        from nexus.media.transcribe import transcribe

        media = await self._media(ref.media_id)
        async with session_scope(self.rt.engine) as session:
            existing = (
                await session.execute(select(func.count()).where(TranscriptSegment.media_id == media.id))
            ).scalar_one()
        if existing:
            return TranscribeResult(segments=existing, language=media.language, reused=True)
        settings = self.rt.settings
        with scratch_dir("stt") as tmp:
            wav = tmp / "audio.wav"
            await asyncio.to_thread(self.rt.store.get_file, media.audio_key or "", wav)

            def work(progress: Callable[[float], None]):
                return transcribe(settings, wav, lambda done, total: progress(done / total if total else 0.0))

            result = await run_blocking(work, on_progress=await self._progress(ref.job_id, MediaStatus.transcribing))
        # All segments in one transaction; the (media_id, idx) unique key stops a racing attempt from doubling them.
        async with session_scope(self.rt.engine) as session:
            for i, seg in enumerate(result.segments):
                session.add(
                    TranscriptSegment(
                        media_id=media.id,
                        owner_id=media.owner_id,
                        idx=i,
                        start_s=seg.start,
                        end_s=seg.end,
                        speaker=seg.speaker,
                        text=seg.text,
                    )
                )
            await session.execute(
                update(MediaItem).where(MediaItem.id == media.id).values(language=result.language, updated_at=utcnow())
            )
        return TranscribeResult(segments=len(result.segments), language=result.language, reused=False)

    # --- llm -----------------------------------------------------------------------------------------------

    @activity.defn(name="media.enrich")
    async def enrich_media(self, ref: MediaRef) -> EnrichResult:
        media = await self._media(ref.media_id)
        if media.enrichment_provider:
            return EnrichResult(provider=media.enrichment_provider, tags=media.tags, reused=True)
        async with session_scope(self.rt.engine) as session:
            texts = (
                await session.execute(
                    select(TranscriptSegment.text)
                    .where(TranscriptSegment.media_id == media.id)
                    .order_by(TranscriptSegment.idx)
                )
            ).scalars()
            transcript = " ".join(texts)
        provider = enrichment_provider(self.rt.settings, self.embedder)
        try:
            result = await provider.enrich(transcript[:100_000])
        except ProviderError as exc:
            raise ApplicationError(str(exc), type="ProviderError", non_retryable=not exc.retryable) from exc
        async with session_scope(self.rt.engine) as session:
            await session.execute(
                update(MediaItem)
                .where(MediaItem.id == media.id)
                .values(
                    title=media.title or result.title,
                    summary=result.summary,
                    tags=result.tags,
                    enrichment_provider=result.provider,
                    enrichment_model=result.model,
                    updated_at=utcnow(),
                )
            )
        return EnrichResult(provider=result.provider, tags=result.tags, reused=False)
