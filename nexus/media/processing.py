"""The pipeline's stages as plain async functions: fetch, fingerprint, transcribe, enrich, embed.

Activities are thin adapters around these (heartbeats, error types); the rules live here. Each stage is
idempotent: re-running it for the same media id finds what an earlier attempt stored and reuses it, so a retry
never repeats a finished download, transcription or LLM call. Files travel between machines only through object
storage; each stage works in a private temp dir that is removed when it ends, so a failure strands no files.

`progress(fraction)` callbacks are plain, thread-safe setters: the caller decides how progress is reported.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client

from models import JobKind, MediaItem, MediaJob, SourceType
from nexus.core.errors import BadInput
from nexus.core.stopping import StopToken, run_stoppable
from nexus.llm import registry
from nexus.llm.providers import Enrichment
from nexus.media import repository
from nexus.media.chunking import passages_of, turns_text
from nexus.media.contracts import DedupResult, EmbedResult, EnrichResult, FetchResult, TranscribeResult
from nexus.media.fetch import check_url, download, to_channels_wav, to_speech_wav, validate_media
from nexus.media.fingerprint import Fingerprint, fingerprint_file, is_near_duplicate
from nexus.media.repository import media_prefix
from nexus.media.transcribe import Transcript
from nexus.runtime import Runtime

Progress = Callable[[float], None]


def _ignore(_fraction: float) -> None:
    pass


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"nexus-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def load(rt: Runtime, media_id: uuid.UUID) -> MediaItem:
    media = await repository.get_media(rt.engine, media_id)
    if media is None:
        raise BadInput("the media item was deleted")
    return media


async def fetch(
    rt: Runtime, media_id: uuid.UUID, progress: Progress = _ignore, client: Client | None = None
) -> FetchResult:
    """Download (URL, or a connected account's file with `client` to refresh its token) or take the upload,
    check it is real audio/video within limits, store a 16 kHz WAV."""
    media = await load(rt, media_id)
    store, settings = rt.store, rt.settings
    if media.audio_key and media.duration_s and await asyncio.to_thread(store.exists, media.audio_key):
        return FetchResult(duration_s=media.duration_s, audio_key=media.audio_key, reused=True)
    prefix = media_prefix(media.owner_id, media.id)
    max_bytes = int(settings.max_media_mb * 1024 * 1024)
    with scratch_dir("fetch") as tmp:
        if media.source_type == SourceType.url:
            url = media.source_url or ""
            await asyncio.to_thread(check_url, url, allow_private=settings.allow_private_urls)
            original = await run_stoppable(
                lambda stop: download(
                    url,
                    tmp,
                    max_bytes=max_bytes,
                    allow_private=settings.allow_private_urls,
                    on_progress=lambda done, total: progress(0.9 * done / total if total else 0.0),
                    stop=stop,
                )
            )
            original_key = f"{prefix}/original{original.suffix or '.bin'}"
        elif media.source_type == SourceType.google_drive:
            original = tmp / f"original{Path(media.original_filename or '').suffix or '.bin'}"
            await _download_from_drive(rt, client, media, original, max_bytes, progress)
            original_key = f"{prefix}/{original.name}"
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
        await run_stoppable(lambda stop: to_speech_wav(original, wav, stop))
        split = tmp / "channels.wav"
        distinct = await run_stoppable(lambda stop: to_channels_wav(original, split, info.channels, stop))
        progress(0.95)
        await load(rt, media_id)  # deleted meanwhile: write nothing under its prefix
        audio_key = f"{prefix}/audio.wav"
        if original_key != media.original_key:
            await asyncio.to_thread(store.put_file, original_key, original)
        if distinct:  # a speaker per channel: transcription hears each channel on its own
            await asyncio.to_thread(store.put_file, channels_key(prefix), split, "audio/wav")
        await asyncio.to_thread(store.put_file, audio_key, wav, "audio/wav")
        size = original.stat().st_size
    stored = await repository.store_audio(
        rt.engine,
        media.id,
        original_key=original_key,
        audio_key=audio_key,
        duration_s=info.duration_s,
        size_bytes=size,
        mime_type=info.format_name,
        has_video=info.has_video,
    )
    if not stored:  # deleted while the files were being written: take them back
        await asyncio.to_thread(store.delete_prefix, prefix)
        raise BadInput("the media item was deleted")
    return FetchResult(duration_s=info.duration_s, audio_key=audio_key, reused=False)


async def _download_from_drive(
    rt: Runtime, client: Client | None, media: MediaItem, dest: Path, max_bytes: int, progress: Progress
) -> None:
    from nexus.integrations import service as integrations

    if client is None or media.integration_id is None or not media.source_url:
        raise BadInput("this Drive import has no connected Google account (it was disconnected): import it again")
    try:
        await integrations.download(
            rt,
            client,
            media.integration_id,
            media.source_url,
            dest,
            max_bytes=max_bytes,
            on_progress=lambda done, total: progress(0.9 * done / total if total else 0.0),
        )
    except integrations.IntegrationError as exc:
        raise BadInput(f"Google Drive: {exc}") from exc


def channels_key(prefix: str) -> str:
    """Where the per-channel audio of a recording with a speaker per channel is kept."""
    return f"{prefix}/channels.wav"


async def fingerprint(rt: Runtime, media_id: uuid.UUID) -> DedupResult:
    """Fingerprint the audio and compare it with the owner's other items: a near-duplicate is not reprocessed.
    The decision is made once (a retry finds it stored) and serialized per owner (`settle_duplicate`)."""
    media = await load(rt, media_id)
    if media.fingerprint:
        return DedupResult(duplicate_of=media.duplicate_of, ber=media.duplicate_ber)
    with scratch_dir("fp") as tmp:
        wav = tmp / "audio.wav"
        await asyncio.to_thread(rt.store.get_file, media.audio_key or "", wav)
        fp = await asyncio.to_thread(fingerprint_file, wav)

    async def match(duration: float | None, encoded: str) -> tuple[bool, float]:
        return await asyncio.to_thread(is_near_duplicate, fp, Fingerprint(duration or 0, encoded))

    found = await repository.settle_duplicate(rt.engine, media, fp.encoded, match)
    return DedupResult(duplicate_of=found[0] if found else None, ber=found[1] if found else None)


async def _draft_job(rt: Runtime, job_id: uuid.UUID | None) -> MediaJob | None:
    """The job when it is a re-transcription: its stages write to a draft, swapped in by `embed`."""
    job = await repository.get_job(rt.engine, job_id) if job_id else None
    return job if job is not None and job.kind == JobKind.retranscribe else None


async def transcribe(
    rt: Runtime, media_id: uuid.UUID, job_id: uuid.UUID | None = None, progress: Progress = _ignore
) -> TranscribeResult:
    media = await load(rt, media_id)
    redo = await _draft_job(rt, job_id)
    if redo:
        draft = await repository.draft_for(rt.engine, redo)
        if draft.transcript is not None or draft.applied_at is not None:
            return TranscribeResult(
                segments=len((draft.transcript or {}).get("segments", [])), language=None, reused=True
            )
        asked = redo.request or {}
    else:
        existing = await repository.count_segments(rt.engine, media.id)
        if existing:
            return TranscribeResult(segments=existing, language=media.language, reused=True)
        asked = media.transcription or {}
    result = await _run_whisper(rt, media, asked, progress)
    if redo:
        await repository.update_draft(rt.engine, redo.id, transcript=result.to_json())
    else:
        await repository.store_transcript(rt.engine, media, result)
    return TranscribeResult(segments=len(result.segments), language=result.language, reused=False)


async def _run_whisper(rt: Runtime, media: MediaItem, asked: dict[str, Any], progress: Progress) -> Transcript:
    from nexus.media.transcribe import Options, add_translation, load_audio, transcribe_channels
    from nexus.media.transcribe import transcribe as run_whisper

    split = channels_key(media_prefix(media.owner_id, media.id))
    by_channel = await asyncio.to_thread(rt.store.exists, split)
    with scratch_dir("stt") as tmp:
        wav = tmp / "audio.wav"
        await asyncio.to_thread(rt.store.get_file, split if by_channel else media.audio_key or "", wav)
        # A speaker per channel is labelled by channel already; one channel is told apart by voice, when asked.
        diarize = not by_channel and bool(asked.get("speakers") or rt.settings.diarize)
        translate = bool(asked.get("translate", rt.settings.translate_to_english))
        options = Options(
            language=asked.get("language"),
            hotwords=", ".join(asked.get("vocabulary") or []) or None,
            prompt=asked.get("prompt") or None,
            model=asked.get("model") or "fast",
            translate=translate and not diarize,  # when diarizing, translate the segments speakers split (below)
        )
        run = transcribe_channels if by_channel else run_whisper
        result = await run_stoppable(
            lambda stop: run(
                rt.settings, wav, lambda done, total: progress(done / total if total else 0.0), stop, options
            )
        )
        if diarize and result.segments:
            from nexus.media.diarize import label_speakers

            samples = await asyncio.to_thread(load_audio, wav)  # once, for the diarizer and the translation

            def label_then_translate(stop: StopToken) -> None:
                label_speakers(rt.settings, samples, result, asked.get("speakers"), stop)
                if translate:
                    add_translation(rt.settings, samples, result, stop)

            await run_stoppable(label_then_translate)
        return result


async def enrich(rt: Runtime, media_id: uuid.UUID, job_id: uuid.UUID | None = None) -> EnrichResult:
    """Title, summary and tags from the configured provider; stored before anything else can fail."""
    from nexus.llm.service import enrichment_provider

    media = await load(rt, media_id)
    redo = await _draft_job(rt, job_id)
    if redo:
        draft = await repository.draft_for(rt.engine, redo)
        if draft.enrichment is not None:
            done = Enrichment.model_validate(draft.enrichment)
            return EnrichResult(provider=done.provider, tags=done.tags, reused=True)
        if draft.applied_at is not None:
            return EnrichResult(provider=media.enrichment_provider or "", tags=media.tags, reused=True)
        transcript = turns_text([(s.speaker, s.text) for s in Transcript.from_json(draft.transcript or {}).segments])
    else:
        if media.enrichment_provider:
            return EnrichResult(provider=media.enrichment_provider, tags=media.tags, reused=True)
        transcript = await repository.transcript_text(rt.engine, media.id)
    provider = enrichment_provider(rt.settings, rt.embedder)
    result = await provider.enrich(transcript[:100_000])
    if redo:
        await repository.update_draft(rt.engine, redo.id, enrichment=result.model_dump(mode="json"))
    else:
        await repository.store_enrichment(rt.engine, media, result)
    return EnrichResult(provider=result.provider, tags=result.tags, reused=False)


async def embed(rt: Runtime, media_id: uuid.UUID, job_id: uuid.UUID | None = None) -> EmbedResult:
    """Passages and their vectors. For a re-transcription this is the swap: the draft's transcript, passages and
    vectors replace the item's in one transaction."""
    media = await load(rt, media_id)
    redo = await _draft_job(rt, job_id)
    if redo:
        draft = await repository.draft_for(rt.engine, redo)
        if draft.applied_at is not None:
            return EmbedResult(chunks=await repository.count_chunks(rt.engine, media.id), reused=True)
        transcript = Transcript.from_json(draft.transcript or {})
        segments = [(s.start, s.end, s.text, s.translation) for s in transcript.segments]
    else:
        existing = await repository.count_chunks(rt.engine, media.id)
        if existing:
            return EmbedResult(chunks=existing, reused=True)
        segments = await repository.segment_texts(rt.engine, media.id)
    passages = passages_of(segments)
    enrichment = Enrichment.model_validate(draft.enrichment) if redo and draft.enrichment else None

    async def write() -> None:
        # Vectors of every model the index is writing (the active one, and one being built during a re-embed).
        vectors = await rt.index_vectors([p.text for p in passages])
        if redo:
            await repository.apply_draft(rt.engine, media, redo, transcript, enrichment, passages, vectors)
        else:
            await repository.store_chunks(rt.engine, media, passages, vectors)

    await registry.write_retrying(write)
    return EmbedResult(chunks=len(passages), reused=False)


async def discard_objects(rt: Runtime, job_id: uuid.UUID) -> None:
    """Bad input cannot be retried into success: drop what was stored for it so nothing is stranded. Not for a
    re-transcription: the item it was asked for stays as it was, files included."""
    job = await repository.get_job(rt.engine, job_id)
    media = await repository.media_of_job(rt.engine, job_id)
    if job is None or job.kind != JobKind.process or media is None:
        return
    await asyncio.to_thread(rt.store.delete_prefix, media_prefix(media.owner_id, media.id))
    await repository.forget_objects(rt.engine, media.id)
