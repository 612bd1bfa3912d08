"""A user's corrections to a transcript: a segment's words, and names for its speakers.

A corrected segment keeps what the transcriber heard (`original_text`); its word timings are dropped (they
belong to the words that were heard). The item's passages are re-chunked and re-embedded, and swapped in one
transaction with the correction: search finds the corrected words at once and never sees a half-indexed item.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import MediaChunk, MediaItem, MediaStatus, TranscriptSegment
from nexus.core.db import lock_for_transaction
from nexus.core.errors import BadInput, Unavailable
from nexus.llm import registry
from nexus.media.chunking import passages_of
from nexus.media.repository import add_chunks
from nexus.media.service import unfinished_job
from nexus.runtime import Runtime

SPEAKER_LABEL = re.compile(r"S\d{1,2}")  # whole label (fullmatch): `$` would let "S1\n" through
MAX_SEGMENT_CHARS = 5000


class NotReady(Exception):
    """The item is still being processed: its transcript and passages are not final yet."""


async def correct_segment(
    rt: Runtime, session: AsyncSession, media: MediaItem, idx: int, text: str
) -> TranscriptSegment | None:
    """Replace segment `idx`'s text and re-index the item, in the caller's transaction. None: no such segment."""
    text = " ".join(text.split())
    if not text:
        raise BadInput("the corrected text is empty")
    if len(text) > MAX_SEGMENT_CHARS:
        raise BadInput(f"a segment holds at most {MAX_SEGMENT_CHARS} characters")
    if media.status != MediaStatus.completed:
        raise NotReady(f"the item is {media.status}: correct it once processing has completed")
    await lock_for_transaction(session, f"transcript:{media.id}")  # one correction of an item at a time
    if await unfinished_job(session, media.id):
        # its swap would replace the corrected transcript: correct the new one instead
        raise NotReady("the item is being re-transcribed: correct it once that run has ended")
    segments = list(
        (
            await session.execute(
                select(TranscriptSegment)
                .where(col(TranscriptSegment.media_id) == media.id)
                .order_by(col(TranscriptSegment.idx))
            )
        ).scalars()
    )
    target = next((s for s in segments if s.idx == idx), None)
    if target is None:
        return None
    if target.original_text is None:
        target.original_text = target.text
    target.text = text
    target.words = []
    passages = passages_of([(s.start_s, s.end_s, s.text, s.translation) for s in segments])
    vectors = await rt.index_vectors([p.text for p in passages], session, reusing=media.id)
    await session.execute(delete(MediaChunk).where(col(MediaChunk.media_id) == media.id))
    try:
        await add_chunks(session, media, passages, vectors)
    except registry.TargetsChanged as exc:  # a re-embedding switched models this instant
        raise Unavailable("the search index", str(exc)) from exc
    return target


def check_speaker_names(names: dict[str, str | None]) -> dict[str, str | None]:
    """{"S1": "Ada"}; an empty name (or null) removes it."""
    cleaned: dict[str, str | None] = {}
    for label, name in names.items():
        if not SPEAKER_LABEL.fullmatch(label):
            raise BadInput(f"{label!r} is not a speaker label (S1, S2, ...)")
        name = " ".join((name or "").split())
        if len(name) > 100:
            raise BadInput(f"the name for {label} is longer than 100 characters")
        cleaned[label] = name or None
    return cleaned


async def name_speakers(session: AsyncSession, media: MediaItem, names: dict[str, str | None]) -> dict[str, str]:
    """Merge `names` into the item's, in the caller's transaction. Under the item's transcript lock and read
    again there: two renames at once (S1, then S2) each kept only their own name. Refused while a
    re-transcription runs: its swap brings new labels, which may be other people."""
    await lock_for_transaction(session, f"transcript:{media.id}")
    if await unfinished_job(session, media.id):
        raise NotReady("the item is being processed: name its speakers once that run has ended")
    await session.refresh(media)
    merged = {**(media.speaker_names or {}), **{k: v for k, v in names.items() if v}}
    for label, name in names.items():
        if not name:
            merged.pop(label, None)
    media.speaker_names = merged
    return merged
