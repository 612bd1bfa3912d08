"""Transcript segments -> passages for retrieval: about 60 words or 30 s each, keeping segment boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

MAX_WORDS = 60
MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Passage:
    start_s: float
    end_s: float
    text: str
    track: str = "transcript"  # or "translation": the English translation of speech in another language


def chunk_segments(segments: list[tuple[float, float, str]]) -> list[Passage]:
    passages: list[Passage] = []
    buf: list[tuple[float, float, str]] = []
    words = 0
    for start, end, text in segments:
        n = len(text.split())
        if buf and (words + n > MAX_WORDS or end - buf[0][0] > MAX_SECONDS):
            passages.append(Passage(buf[0][0], buf[-1][1], " ".join(t for _, _, t in buf)))
            buf, words = [], 0
        buf.append((start, end, text))
        words += n
    if buf:
        passages.append(Passage(buf[0][0], buf[-1][1], " ".join(t for _, _, t in buf)))
    return passages


def turns_text(segments: Sequence[tuple[str | None, str]]) -> str:
    """(speaker, text) segments -> the text enrichment reads: a line per speaker turn, prefixed by its label
    (`S1: ...`) when speakers are labelled, else the words alone."""
    lines: list[tuple[str | None, list[str]]] = []
    for speaker, text in segments:
        if lines and lines[-1][0] == speaker:
            lines[-1][1].append(text)
        else:
            lines.append((speaker, [text]))
    if all(speaker is None for speaker, _ in lines):
        return " ".join(" ".join(texts) for _, texts in lines)
    return "\n".join(f"{speaker or '?'}: {' '.join(texts)}" for speaker, texts in lines)


def passages_of(segments: Sequence[tuple[float, float, str, str | None]]) -> list[Passage]:
    """(start, end, text, translation) segments -> the transcript's passages, then its English translation's:
    a second track that search also finds, at the same seconds."""
    spoken = chunk_segments([(a, b, text) for a, b, text, _ in segments])
    translated = chunk_segments([(a, b, english) for a, b, _, english in segments if english])
    return spoken + [replace(p, track="translation") for p in translated]
