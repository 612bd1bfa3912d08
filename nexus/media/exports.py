"""A transcript as the files every transcription tool offers: SRT, WebVTT, plain text and JSON.

Cues follow the words: a segment with word timings is cut into cues of at most two subtitle lines
(MAX_CUE_CHARS) or MAX_CUE_S seconds, each starting at its first word, so captions keep pace with the speech. A
segment without word timings (a user's correction) is one cue. Speakers appear by name when named, else by label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nexus.media.vocabulary import NO_SPACES

MAX_CUE_CHARS = 84  # two lines of 42: the usual subtitle limit
MAX_CUE_S = 7.0
FORMATS = {"srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain", "json": "application/json"}


@dataclass(frozen=True)
class Line:
    """A transcript segment as exports need it."""

    start: float
    end: float
    text: str
    speaker: str | None = None  # the name when given, else the label
    language: str | None = None
    translation: str | None = None
    words: Sequence[Sequence[Any]] = ()  # [word, start, end, probability]


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    speaker: str | None


def cues(lines: Sequence[Line]) -> list[Cue]:
    out: list[Cue] = []
    for line in lines:
        if not line.words:
            out.append(Cue(line.start, line.end, line.text, line.speaker))
            continue
        joiner = "" if line.language in NO_SPACES else " "
        words: list[Sequence[Any]] = []
        for word in line.words:
            text = joiner.join(str(w[0]) for w in [*words, word])
            if words and (len(text) > MAX_CUE_CHARS or float(word[2]) - float(words[0][1]) > MAX_CUE_S):
                out.append(_cue(words, line.speaker, joiner))
                words = []
            words.append(word)
        if words:
            out.append(_cue(words, line.speaker, joiner))
    return out


def _cue(words: Sequence[Sequence[Any]], speaker: str | None, joiner: str) -> Cue:
    return Cue(float(words[0][1]), float(words[-1][2]), joiner.join(str(w[0]) for w in words), speaker)


def _clock(seconds: float, sep: str) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt(lines: Sequence[Line]) -> str:
    blocks = []
    for i, cue in enumerate(cues(lines), start=1):
        text = f"{cue.speaker}: {cue.text}" if cue.speaker else cue.text
        blocks.append(f"{i}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt(lines: Sequence[Line]) -> str:
    """WebVTT with voice tags (`<v Ada>`), which players show and the web console uses as its captions track."""
    blocks = ["WEBVTT\n"]
    for cue in cues(lines):
        text = _vtt_escape(cue.text)
        if cue.speaker:
            text = f"<v {_vtt_escape(cue.speaker)}>{text}</v>"
        blocks.append(f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def txt(lines: Sequence[Line]) -> str:
    out = []
    for line in lines:
        stamp = _clock(line.start, ".")[:8]
        out.append(f"[{stamp}] {line.speaker}: {line.text}" if line.speaker else f"[{stamp}] {line.text}")
        if line.translation:
            out.append(f"           (en) {line.translation}")
    return "\n".join(out) + ("\n" if out else "")


def as_json(lines: Sequence[Line], meta: dict[str, Any]) -> str:
    segments = [
        {
            "start": line.start,
            "end": line.end,
            "speaker": line.speaker,
            "language": line.language,
            "text": line.text,
            "translation": line.translation,
            "words": [{"word": w[0], "start": w[1], "end": w[2], "probability": w[3]} for w in line.words],
        }
        for line in lines
    ]
    return json.dumps({**meta, "segments": segments}, ensure_ascii=False, indent=1)
