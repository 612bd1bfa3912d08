"""The audit's arithmetic: which speech no segment covers, which segments the model doubts, the windows that
go to the multilingual model, and seconds per language."""

from __future__ import annotations

from nexus.media.transcribe import (
    Segment,
    Word,
    doubtful,
    languages_of,
    merge_spans,
    uncovered,
    windows,
)


def seg(start: float, end: float, probs: tuple[float, ...] = (), language: str | None = "en") -> Segment:
    words = tuple(Word(f"w{i}", start, end, p) for i, p in enumerate(probs))
    return Segment(start, end, "text", language=language, words=words)


def test_speech_no_segment_covers_is_found() -> None:
    speech = [(0.0, 20.0), (25.0, 27.0)]
    segments = [seg(0.0, 8.5), seg(9.0, 10.0)]
    assert uncovered(speech, segments) == [(10.0, 20.0), (25.0, 27.0)]
    assert uncovered([(0.0, 10.0)], [seg(0.0, 4.0), seg(4.5, 10.0)]) == []  # a breath between is no gap


def test_the_model_doubting_its_words_is_noticed() -> None:
    assert not doubtful(seg(0, 5, (0.9, 0.8, 0.95, 0.7)))  # clear English
    assert not doubtful(seg(0, 5, (0.9, 0.9, 0.1, 0.2, 0.8)))  # a hard English sentence: two of five unsure
    assert doubtful(seg(0, 5, (0.3, 0.5, 0.2, 0.4)))  # mean below 0.45: what tiny.en makes of Spanish
    assert doubtful(seg(0, 5, (0.9, 0.1, 0.1, 0.2, 0.9)))  # three of five under 0.3
    assert not doubtful(seg(0, 5))  # no word timings: nothing to judge


def test_spans_merge_and_split_into_whisper_windows() -> None:
    assert merge_spans([(10.0, 12.0), (12.2, 15.0), (40.0, 41.0)], pad=0.3) == [(9.7, 15.3), (39.7, 41.3)]
    assert windows(0.0, 20.0) == [(0.0, 20.0)]
    parts = windows(10.0, 75.0)
    assert len(parts) == 3 and parts[0][0] == 10.0 and parts[-1][1] == 75.0
    assert all(b - a <= 30.0 for a, b in parts)


def test_seconds_per_language() -> None:
    found = languages_of([seg(0, 8.5), seg(8.7, 12.0, language="es"), seg(12.0, 17.0, language="es")])
    assert found == {"en": 8.5, "es": 8.3}


def test_a_foreign_window_grows_over_unsure_neighbours_only() -> None:
    from nexus.media.transcribe import grow, merge_languages

    segments = [seg(0, 8, (0.9, 0.9)), seg(8.5, 11, (0.2, 0.3)), seg(11.2, 14, (0.6, 0.5)), seg(20, 24, (0.5,))]
    assert grow(8.5, 11, segments) == (8.5, 14)  # the unsure next one joins; the sure English before does not;
    # the one at 20 s is too far away
    assert merge_languages([(8, 12, "es"), (11, 14, "es"), (14, 16, "de")]) == [(8, 14, "es"), (14, 16, "de")]


def test_one_speakers_segments_never_overlap_but_two_speakers_may() -> None:
    from itertools import pairwise

    from nexus.media.transcribe import untangle

    mine = [seg(0.0, 4.2), seg(4.0, 8.0), seg(8.0, 9.0), seg(8.0, 8.5)]
    tidy = untangle(mine)
    assert all(a.end <= b.start and a.start < a.end for a, b in pairwise(tidy)), tidy
    two = [Segment(0.0, 5.0, "a", "S1"), Segment(2.0, 6.0, "b", "S2")]
    assert [(s.start, s.end) for s in untangle(two)] == [(0.0, 5.0), (2.0, 6.0)]


def test_the_api_knows_the_same_languages_as_whisper() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from nexus.media.vocabulary import WHISPER_LANGUAGES

    assert frozenset(_LANGUAGE_CODES) == WHISPER_LANGUAGES
