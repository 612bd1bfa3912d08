"""The translation track: windows never span speech in another language, and a translated sentence goes only to
a segment it overlaps."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from nexus.media.transcribe import SAMPLE_RATE, Segment, translate


class FakeTranslator:
    """Whisper's translate task as the code sees it: pieces with times relative to the window it was given."""

    def __init__(self, pieces: list[list[tuple[float, float, str]]]) -> None:
        self.pieces, self.windows = pieces, []

    def transcribe(self, audio: np.ndarray, **kw: Any) -> tuple[list[SimpleNamespace], None]:
        assert kw["task"] == "translate"
        self.windows.append((len(audio) / SAMPLE_RATE, kw["language"]))
        return [SimpleNamespace(start=a, end=b, text=t) for a, b, t in self.pieces.pop(0)], None


def test_english_between_two_german_stretches_is_not_translated_into_either() -> None:
    segments = [
        Segment(0.0, 2.0, "Hallo.", language="de"),
        Segment(2.0, 6.0, "I speak English here.", language="en"),
        Segment(6.0, 8.0, "Tschüss.", language="de"),
    ]
    model = FakeTranslator([[(0.0, 2.0, "Hello.")], [(0.0, 2.0, "Bye."), (2.5, 3.0, "stray")]])
    out = translate(model, np.zeros(8 * SAMPLE_RATE, dtype=np.float32), segments, None)
    assert [s.translation for s in out] == ["Hello.", None, "Bye."]
    assert model.windows == [(2.0, "de"), (2.0, "de")]  # two windows: the English is in neither
