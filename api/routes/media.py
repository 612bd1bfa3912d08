"""Media: submit by URL or upload, list, read (with transcript), delete. Everything scoped to the caller."""

from __future__ import annotations

import asyncio
import mimetypes
import re
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, HTTPException, Query, Response, UploadFile, status
from fastapi import Path as FastAPIPath
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import any_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client

from api.deps import CurrentUser, ReadableMedia, RuntimeDep, SessionDep, TemporalDep, WritableMedia
from models import MediaItem, MediaStatus, SourceType, TranscriptSegment, User
from nexus.core.errors import BadInput, Unavailable
from nexus.identity.access import permitted
from nexus.identity.service import personal_workspace
from nexus.media import corrections, exports
from nexus.media import service as media_service
from nexus.media.fetch import check_url, validate_upload
from nexus.media.repository import media_prefix
from nexus.media.service import create_job, delete_media, latest_job, start_pipeline
from nexus.media.vocabulary import check_language, clean_terms, split_terms, transcription_request
from nexus.runtime import Runtime

router = APIRouter(prefix="/api/media", tags=["media"])
UPLOAD_CHUNK = 1024 * 1024


class TranscriptionOptions(BaseModel):
    """How to transcribe an item: given with the upload, the URL or a re-transcription."""

    language: str | None = Field(
        default=None, max_length=8, description="Force the spoken language (e.g. `de`); default: detected."
    )
    vocabulary: list[str] = Field(
        default_factory=list, max_length=500, description="Terms to recognise, on top of your vocabulary."
    )
    prompt: str | None = Field(default=None, max_length=5000, description="Context for the transcriber.")
    model: Literal["fast", "multilingual"] | None = Field(
        default=None,
        description="`fast` (default: the English model, the multilingual one for other languages) or "
        "`multilingual` (the multilingual model throughout: slower, better on mostly non-English speech).",
    )
    speakers: int | None = Field(
        default=None, ge=1, le=10, description="How many speakers; turns on speaker labels for a single channel."
    )
    translate: bool | None = Field(
        default=None, description="Also an English translation of speech in other languages (default: off)."
    )


class ProcessRequest(TranscriptionOptions):
    source: Literal["url", "google_drive"] = "url"
    url: str | None = Field(default=None, min_length=1, max_length=4096, description="For `source=url`.")
    file_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,200}$", description="For `source=google_drive`: the Drive file id."
    )
    integration_id: uuid.UUID | None = Field(
        default=None, description="Which connected Google account (default: your most recent active one)."
    )
    title: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_source(self) -> ProcessRequest:
        if self.source == "url" and not self.url:
            raise ValueError("`url` is required when source is url")
        if self.source == "google_drive" and not self.file_id:
            raise ValueError("`file_id` is required when source is google_drive")
        return self


class Submitted(BaseModel):
    media_id: uuid.UUID
    job_id: uuid.UUID
    workflow_id: str


class MediaSummary(BaseModel):
    id: uuid.UUID
    title: str | None
    source_type: SourceType
    source_url: str | None
    status: MediaStatus
    duration_s: float | None
    duplicate_of: uuid.UUID | None
    summary: str | None
    tags: list[str]
    created_at: datetime
    error: str | None


class WordOut(BaseModel):
    word: str
    start: float
    end: float
    probability: float


class SegmentOut(BaseModel):
    start: float
    end: float
    speaker: str | None = Field(description="The speaker's name when given, else its label (S1, S2, ...).")
    language: str | None
    text: str
    translation: str | None = Field(default=None, description="English, for speech in another language.")
    words: list[WordOut]


class MediaDetail(MediaSummary):
    language: str | None
    languages: dict[str, float] = Field(description="Seconds of speech per detected language.")
    speaker_names: dict[str, str] = Field(description="Names given to speaker labels.")
    speaker_suggestions: dict[str, str] = Field(
        description="Names a language model proposed from what was said: suggestions, not applied."
    )
    transcription: dict[str, Any] = Field(
        description="What transcription applied (language, vocabulary, prompt, models) and its warnings."
    )
    original_filename: str | None
    size_bytes: int | None
    has_video: bool | None = Field(
        description="The original file has a picture (GET /original plays it); null when not known."
    )
    enrichment_provider: str | None
    enrichment_model: str | None
    job_id: uuid.UUID | None
    duplicates: list[MediaSummary] = Field(description="Items found to be near-duplicates of this one.")
    segments: list[SegmentOut]


class MediaPage(BaseModel):
    items: list[MediaSummary]
    total: int
    limit: int
    offset: int


def _summary(m: MediaItem) -> MediaSummary:
    return MediaSummary.model_validate(m, from_attributes=True)


async def _submit(
    session: SessionDep, client: TemporalDep, runtime: RuntimeDep, media: MediaItem
) -> tuple[MediaItem, Submitted]:
    await media_service.check_capacity(session, runtime, media.owner_id)  # AtCapacity: 429 (api/errors.py)
    session.add(media)
    await session.flush()
    job = await create_job(session, media)
    # Commit before starting so the workflow's first activity finds the rows; undo if Temporal refuses.
    await session.commit()
    try:
        await start_pipeline(client, runtime, media, job)
    except Exception as exc:
        await session.delete(media)
        await session.commit()
        if media.original_key:
            await asyncio.to_thread(runtime.store.delete_prefix, media_prefix(media.owner_id, media.id))
        if isinstance(exc, Unavailable):
            raise
        raise Unavailable("Temporal", f"could not start processing: {exc}") from exc
    return media, Submitted(media_id=media.id, job_id=job.id, workflow_id=job.workflow_id)


@router.post("/process", status_code=status.HTTP_202_ACCEPTED)
async def process_url(
    body: ProcessRequest, user: CurrentUser, session: SessionDep, client: TemporalDep, runtime: RuntimeDep
) -> Submitted:
    if body.source == "google_drive":
        return await _import_from_drive(body, user, session, client, runtime)
    url = (body.url or "").strip()
    try:
        await asyncio.to_thread(check_url, url, allow_private=runtime.settings.allow_private_urls)
    except BadInput as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    workspace = await personal_workspace(session, user)
    media = MediaItem(
        owner_id=user.id,
        workspace_id=workspace.id,
        source_type=SourceType.url,
        source_url=url,
        title=body.title,
        transcription=await _transcription(session, runtime, user, body),
    )
    _, submitted = await _submit(session, client, runtime, media)
    return submitted


async def _transcription(
    session: AsyncSession, runtime: Runtime, user: User, options: TranscriptionOptions
) -> dict[str, Any]:
    try:
        return await transcription_request(
            session,
            runtime.settings,
            user.id,
            **options.model_dump(include=set(TranscriptionOptions.model_fields)),
        )
    except BadInput as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc


async def _import_from_drive(
    body: ProcessRequest, user: User, session: AsyncSession, client: Client, runtime: Runtime
) -> Submitted:
    """A Drive file through the pipeline: its name and size are checked now, with the user's Google account
    (fresh token), so a wrong id or a missing connection is a 4xx here, not a failed job later."""
    from nexus.integrations import service as integrations

    integration = await integrations.live_integration(session, user.id, "google", body.integration_id)
    if integration is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no active Google integration: connect one first (GET /api/integrations/google/connect)",
        )
    try:
        found = await integrations.drive_file(runtime, client, integration.id, body.file_id or "")
    except integrations.IntegrationError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    max_bytes = runtime.settings.max_media_mb * 1024 * 1024
    if found.size is not None and found.size > max_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the Drive file is {found.size / 1e6:.0f} MB, over the {runtime.settings.max_media_mb:.0f} MB limit",
        )
    workspace = await personal_workspace(session, user)
    media = MediaItem(
        owner_id=user.id,
        workspace_id=workspace.id,
        source_type=SourceType.google_drive,
        source_url=integrations.drive_file_url(runtime, found.id),
        integration_id=integration.id,
        original_filename=found.name[:500],
        title=body.title or found.name[:500],
        transcription=await _transcription(session, runtime, user, body),
    )
    _, submitted = await _submit(session, client, runtime, media)
    return submitted


@router.post("/upload", status_code=status.HTTP_202_ACCEPTED)
async def upload(
    user: CurrentUser,
    session: SessionDep,
    client: TemporalDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="Audio or video file")],
    source: Annotated[Literal["file", "mic"], Form()] = "file",
    title: Annotated[str | None, Form(max_length=500)] = None,
    language: Annotated[str | None, Form(max_length=8, description="Force the language, e.g. `de`.")] = None,
    vocabulary: Annotated[
        str | None, Form(max_length=20_000, description="Terms to recognise, comma- or newline-separated.")
    ] = None,
    prompt: Annotated[str | None, Form(max_length=5000, description="Context for the transcriber.")] = None,
    model: Annotated[Literal["fast", "multilingual"] | None, Form(description="`fast` or `multilingual`.")] = None,
    speakers: Annotated[int | None, Form(ge=1, le=10, description="How many speakers (turns labels on).")] = None,
    translate: Annotated[bool | None, Form(description="Also an English translation.")] = None,
) -> Submitted:
    settings = runtime.settings
    try:  # checked before the upload streams in (no query yet: no pooled connection waits on the upload)
        check_language(language)
        options = TranscriptionOptions(
            language=language,
            vocabulary=clean_terms(split_terms(vocabulary), settings),
            prompt=prompt,
            model=model,
            speakers=speakers,
            translate=translate,
        )
    except (BadInput, ValidationError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    max_bytes = int(settings.max_media_mb * 1024 * 1024)
    name = Path(file.filename or "upload").name
    # Only a plain extension names the stored original (a NUL byte or a slash in it would fail to open, and odd
    # characters do not belong in storage keys); the format itself is probed from the content.
    suffix = Path(name).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,9}", suffix) else ".bin"
    tmp = Path(tempfile.mkdtemp(prefix="nexus-upload-"))
    try:
        path = tmp / f"original{suffix}"
        size = 0
        with path.open("wb") as out:
            while chunk := await file.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE,
                        f"file larger than {settings.max_media_mb:g} MB (NEXUS_MAX_MEDIA_MB)",
                    )
                out.write(chunk)
        if size == 0:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the uploaded file is empty")
        try:
            info = await validate_upload(path, max_bytes=max_bytes, max_minutes=settings.max_media_minutes)
        except BadInput as exc:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from exc
        media = MediaItem(
            owner_id=user.id,
            source_type=SourceType(source),
            title=title or None,
            original_filename=name[:500],
            size_bytes=size,
            duration_s=info.duration_s,
        )
        media.original_key = f"{media_prefix(user.id, media.id)}/original{suffix}"
        # The copy to storage comes before the first query: no pooled connection waits on a slow object store.
        await asyncio.to_thread(runtime.store.put_file, media.original_key, path, file.content_type)
        try:
            media.transcription = await _transcription(session, runtime, user, options)
            media.workspace_id = (await personal_workspace(session, user)).id
            _, submitted = await _submit(session, client, runtime, media)
        except BaseException:
            await asyncio.to_thread(runtime.store.delete_prefix, media_prefix(user.id, media.id))
            raise
        return submitted
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@router.get("")
async def list_media(
    user: CurrentUser,
    session: SessionDep,
    status_: Annotated[MediaStatus | None, Query(alias="status")] = None,
    tag: str | None = None,
    source_type: SourceType | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Text filter on the title")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> MediaPage:
    query = permitted(MediaItem, user.id)
    if status_:
        query = query.where(col(MediaItem.status) == status_)
    if tag:
        query = query.where(any_(col(MediaItem.tags)) == tag.lower())
    if source_type:
        query = query.where(col(MediaItem.source_type) == source_type)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(MediaItem.title).ilike(f"%{escaped}%"))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(query.order_by(col(MediaItem.created_at).desc()).limit(limit).offset(offset))
    ).scalars()
    return MediaPage(items=[_summary(m) for m in rows], total=total, limit=limit, offset=offset)


async def _segments(session: AsyncSession, media: MediaItem) -> list[TranscriptSegment]:
    return list(
        (
            await session.execute(
                select(TranscriptSegment)
                .where(col(TranscriptSegment.media_id) == media.id)
                .order_by(col(TranscriptSegment.idx))
            )
        ).scalars()
    )


@router.get("/{media_id}")
async def get_media(media: ReadableMedia, user: CurrentUser, session: SessionDep) -> MediaDetail:
    segments = await _segments(session, media)
    job = await latest_job(session, media.id)
    copies = permitted(MediaItem, user.id).where(col(MediaItem.duplicate_of) == media.id)
    duplicates = (await session.execute(copies.order_by(col(MediaItem.created_at)).limit(50))).scalars()
    return MediaDetail(
        **_summary(media).model_dump(),
        language=media.language,
        languages=media.languages or {},
        speaker_names=media.speaker_names or {},
        speaker_suggestions=media.speaker_suggestions or {},
        transcription=media.transcription or {},
        original_filename=media.original_filename,
        size_bytes=media.size_bytes,
        has_video=media.has_video,
        enrichment_provider=media.enrichment_provider,
        enrichment_model=media.enrichment_model,
        job_id=job.id if job else None,
        duplicates=[_summary(d) for d in duplicates],
        segments=[
            SegmentOut(
                start=s.start_s,
                end=s.end_s,
                speaker=(media.speaker_names or {}).get(s.speaker or "", s.speaker),
                language=s.language,
                text=s.text,
                translation=s.translation,
                words=[WordOut(word=w[0], start=w[1], end=w[2], probability=w[3]) for w in s.words or []],
            )
            for s in segments
        ],
    )


@router.get(
    "/{media_id}/transcript.{fmt}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in exports.FORMATS.values()}}},
)
async def export_transcript(
    media: ReadableMedia, fmt: Literal["srt", "vtt", "txt", "json"], session: SessionDep
) -> Response:
    """The transcript as SRT, WebVTT (with voice tags; the player's captions track), plain text or JSON (word
    timings, languages, translations). Speakers appear by name when named."""
    names = media.speaker_names or {}
    lines = [
        exports.Line(
            start=s.start_s,
            end=s.end_s,
            text=s.text,
            speaker=names.get(s.speaker, s.speaker) if s.speaker else None,
            language=s.language,
            translation=s.translation,
            words=s.words or [],
        )
        for s in await _segments(session, media)
    ]
    if fmt == "json":
        meta = {"media_id": str(media.id), "title": media.title, "language": media.language}
        body = exports.as_json(lines, meta)
    else:
        body = {"srt": exports.srt, "vtt": exports.vtt, "txt": exports.txt}[fmt](lines)
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", media.title or "transcript").strip("_")[:80] or "transcript"
    return Response(
        body,
        media_type=f"{exports.FORMATS[fmt]}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'},
    )


_PLAYBACK: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file (or 206 with a Range header)."},
    206: {"description": "The requested byte range."},
    307: {"description": "With S3 storage: a short-lived presigned GET."},
}


@router.get("/{media_id}/audio", response_class=Response, responses=_PLAYBACK)
async def play_audio(media: ReadableMedia, runtime: RuntimeDep) -> Response:
    """The audio that was transcribed (mono WAV), for the player. HTTP Range requests let it seek an hour-long
    file without downloading it."""
    return await _playback(runtime, media.audio_key, "audio/wav", "no audio yet: the item is still being converted")


@router.get("/{media_id}/original", response_class=Response, responses=_PLAYBACK)
async def play_original(media: ReadableMedia, runtime: RuntimeDep) -> Response:
    """The file as uploaded or downloaded (a video plays with its picture), with Range requests like /audio."""
    kind = mimetypes.guess_type(media.original_key or "")[0] or "application/octet-stream"
    return await _playback(runtime, media.original_key, kind, "the original file was not kept for this item")


async def _playback(runtime: Runtime, key: str | None, content_type: str, missing: str) -> Response:
    try:
        if key is None:
            raise FileNotFoundError(key)
        where = await asyncio.to_thread(runtime.store.read_location, key, content_type)
    except FileNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing) from None
    if isinstance(where, str):
        return RedirectResponse(where, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    # Private: the file is one user's; `no-store` from the API's default would make every seek refetch headers.
    return FileResponse(where, media_type=content_type, headers={"Cache-Control": "private, max-age=300"})


@router.delete("/{media_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_media(media: WritableMedia, session: SessionDep, client: TemporalDep, runtime: RuntimeDep) -> None:
    await delete_media(client, runtime, session, media)


class SegmentCorrection(BaseModel):
    text: str = Field(min_length=1, max_length=5000)


class CorrectedSegment(SegmentOut):
    idx: int
    original_text: str | None


@router.patch("/{media_id}/segments/{idx}")
async def correct_segment(
    media: WritableMedia,
    idx: Annotated[int, FastAPIPath(ge=0, le=1_000_000)],
    body: SegmentCorrection,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CorrectedSegment:
    """Correct what a segment says. The original stays in the record (`original_text`); search finds the
    corrected words as soon as this answers (the item's passages are re-indexed in the same transaction)."""
    try:
        segment = await corrections.correct_segment(runtime, session, media, idx, body.text)
    except corrections.NotReady as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except BadInput as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    if segment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no segment {idx} in this item")
    return CorrectedSegment(
        idx=segment.idx,
        start=segment.start_s,
        end=segment.end_s,
        speaker=segment.speaker,
        language=segment.language,
        text=segment.text,
        words=[],
        original_text=segment.original_text,
    )


class RetranscribeRequest(TranscriptionOptions):
    pass


class Retranscription(BaseModel):
    media_id: uuid.UUID
    job_id: uuid.UUID
    workflow_id: str
    request: dict[str, Any] = Field(description="What the new transcription will apply.")


@router.post("/{media_id}/retranscribe", status_code=status.HTTP_202_ACCEPTED)
async def retranscribe(
    media: WritableMedia,
    body: Annotated[RetranscribeRequest, Body(default_factory=RetranscribeRequest)],
    user: CurrentUser,
    session: SessionDep,
    client: TemporalDep,
    runtime: RuntimeDep,
) -> Retranscription:
    """Transcribe a completed item again (another model, language, speaker count or vocabulary) and redo every
    stage after it. Options not given take their defaults, not the previous run's. The item keeps its current
    transcript and stays searchable until the new one is complete, then both are swapped at once; follow the
    job like any other (`GET /api/jobs/{job_id}/events`)."""
    request = await _transcription(session, runtime, user, body)
    job = await media_service.retranscribe(client, runtime, session, media, request)  # Busy: 409, AtCapacity: 429
    return Retranscription(media_id=media.id, job_id=job.id, workflow_id=job.workflow_id, request=request)


class SpeakerNames(BaseModel):
    names: dict[str, str]


@router.patch("/{media_id}/speakers")
async def name_speakers(
    media: WritableMedia,
    body: Annotated[dict[str, str | None], Body(examples=[{"S1": "Ada", "S2": "Grace"}])],
    session: SessionDep,
) -> SpeakerNames:
    """Name the speakers (`{"S1": "Ada"}`; an empty name removes one). Names show in the item, search results
    and chat citations. 409 while the item is being processed or re-transcribed (its labels may change)."""
    if len(body) > 50:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "at most 50 speakers")
    try:
        names = corrections.check_speaker_names(body)
    except BadInput as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    try:
        merged = await corrections.name_speakers(session, media, names)
    except corrections.NotReady as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    session.add(media)
    return SpeakerNames(names=merged)
