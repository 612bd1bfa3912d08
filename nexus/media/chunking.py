"""Transcript segments -> passages for retrieval: about 60 words or 30 s each, keeping segment boundaries."""

from __future__ import annotations

from dataclasses import dataclass

MAX_WORDS = 60
MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Passage:
    start_s: float
    end_s: float
    text: str


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
