"""Single-channel diarization: clustering and word assignment on synthetic inputs, then two real voices."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nexus.core.settings import Settings
from nexus.core.stopping import Stopped, StopToken
from nexus.media.diarize import DiarizationError, assign, cluster, diarize, smooth, snap, window_frames
from nexus.media.transcribe import Segment, Word
from tests.media_fixtures import ffmpeg

RNG_SEED = 7


def voices(count: int, sharpness: float = 3.0) -> np.ndarray:
    """`count` voice prints (256-d, positive like the encoder's), as far apart as the encoder puts distinct
    speakers: cosine about 0.5 (sharper prints are further apart)."""
    prints = np.random.default_rng(RNG_SEED).random((count, 256)) ** sharpness
    return prints / np.linalg.norm(prints, axis=1, keepdims=True)


def windows_of(prints: np.ndarray, turns: list[tuple[int | np.ndarray, int]], noise: float = 1.0) -> np.ndarray:
    """One embedding per window, `turns` being (voice or print, windows) in time order: as noisy as the encoder's
    (cosine about 0.82 between two windows of one voice, with the default noise)."""
    rng = np.random.default_rng(RNG_SEED + 1)
    rows = []
    for voice, count in turns:
        base = prints[voice] if isinstance(voice, int) else voice
        rows += [np.abs(base + rng.normal(0, base.mean() * noise, len(base))) for _ in range(count)]
    return np.stack(rows)


def spans_for(count: int, hop: float = 0.75, window: float = 1.5) -> list[tuple[float, float]]:
    return [(i * hop, i * hop + window) for i in range(count)]


# --- clustering ---------------------------------------------------------------------------------------------------


def test_two_clear_voices_make_two_clusters_in_order_of_first_appearance() -> None:
    embeddings = windows_of(voices(2), [(1, 10), (0, 10), (1, 10)])
    labels = cluster(embeddings, spans=spans_for(30))
    assert labels.tolist() == [0] * 10 + [1] * 10 + [0] * 10  # voice 1 speaks first: it is cluster 0


def test_one_voice_stays_one_cluster() -> None:
    labels = cluster(windows_of(voices(1), [(0, 40)]), spans=spans_for(40))
    assert set(labels.tolist()) == {0}


def test_a_given_count_is_met_exactly() -> None:
    three = windows_of(voices(3), [(0, 8), (1, 8), (2, 8), (0, 8)])
    assert len(set(cluster(three, speakers=3, spans=spans_for(32)).tolist())) == 3
    assert len(set(cluster(three, spans=spans_for(32)).tolist())) == 3  # and estimated
    two = windows_of(voices(2), [(0, 12), (1, 12)])
    assert len(set(cluster(two, speakers=3, spans=spans_for(24)).tolist())) == 3  # asked for 3: 3, though 2 talk
    assert set(cluster(two, speakers=1).tolist()) == {0}


def test_windows_straddling_a_turn_are_not_a_speaker() -> None:
    """At each change, two windows hear both voices: they sit between the two, and far enough from each to pass
    for a third voice (these prints are sharper than the others, as far apart as a man and a woman), but they
    never hold the floor."""
    prints = voices(2, sharpness=8)
    mixed = prints[0] + prints[1]
    turns = [turn for n in range(6) for turn in ((n % 2, 6), (mixed, 2))]
    embeddings = windows_of(prints, turns, noise=0.5)
    labels = cluster(embeddings, spans=spans_for(len(embeddings)))
    assert len(set(labels.tolist())) == 2
    assert len(set(labels[:6].tolist() + labels[8:14].tolist())) == 2  # the two voices' first turns


def test_clustering_is_deterministic_and_handles_few_windows() -> None:
    embeddings = windows_of(voices(2), [(0, 7), (1, 7)])
    assert cluster(embeddings).tolist() == cluster(embeddings).tolist()
    assert cluster(embeddings[:1]).tolist() == [0]
    assert cluster(embeddings[:0]).tolist() == []
    assert len(cluster(embeddings[:2], speakers=4)) == 2


def test_window_frames_cover_a_region() -> None:
    assert window_frames(40, 150, 75, 50) == []  # too short to say anything about the voice
    assert window_frames(120, 150, 75, 50) == [(0, 120)]  # shorter than a window: one of its own length
    assert window_frames(300, 150, 75, 50) == [(0, 150), (75, 225), (150, 300)]
    assert window_frames(350, 150, 75, 50)[-1] == (200, 350)  # the tail gets a window ending at the end


# --- assigning words and splitting segments -----------------------------------------------------------------------


def words_at(text: str, start: float, step: float = 0.4) -> tuple[Word, ...]:
    return tuple(
        Word(w, round(start + i * step, 2), round(start + i * step + 0.3, 2), 0.9) for i, w in enumerate(text.split())
    )


def segment(text: str, start: float, step: float = 0.4) -> Segment:
    words = words_at(text, start, step)
    return Segment(words[0].start, words[-1].end, text, language="en", words=words)


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    seg = segment("one two three four five six seven eight", 0.0)  # words every 0.4 s, 0.0 to 3.1 s
    spans = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    out = assign([seg], spans, [5, 5, 2, 2], snap_s=0)
    assert [(s.speaker, s.text) for s in out] == [("S1", "one two three four five"), ("S2", "six seven eight")]
    assert out[0].start == 0.0 and out[-1].end == seg.end
    assert out[1].start == out[1].words[0].start and out[0].end == out[0].words[-1].end
    assert sum(len(s.words) for s in out) == len(seg.words)
    assert {s.language for s in out} == {"en"}


def test_labels_follow_first_appearance_and_unsplit_segments_keep_their_text() -> None:
    first, second, third = segment("hello there.", 0.0), segment("good morning.", 2.0), segment("bye now.", 4.0)
    spans = [(0.0, 1.5), (1.5, 3.5), (3.5, 5.0)]
    out = assign([third, first, second], spans, [9, 3, 9])  # given out of order, labels named by time
    assert [(s.text, s.speaker) for s in out] == [("hello there.", "S1"), ("good morning.", "S2"), ("bye now.", "S1")]


def test_segments_without_words_take_the_label_heard_longest() -> None:
    spans = [(0.0, 1.5), (0.75, 2.25), (1.5, 3.0), (2.25, 3.75)]
    out = assign([Segment(0.2, 3.6, "music"), Segment(10.0, 11.0, "far away")], spans, [0, 1, 1, 1])
    assert [s.speaker for s in out] == ["S1", "S1"]  # label 1 heard longest; the far one takes the nearest window
    out = assign([Segment(0.0, 1.0, "a"), Segment(10.0, 11.0, "b")], spans, [0, 0, 0, 1])
    assert [s.speaker for s in out] == ["S1", "S2"]


def test_a_short_flip_between_one_speakers_words_is_smoothed_away() -> None:
    times = [(i * 0.3, i * 0.3 + 0.25) for i in range(10)]
    assert smooth(times, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0], 0.6) == [0] * 10
    assert smooth(times, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0], 0.6) == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]  # a real turn stays
    assert smooth(times, [1, 0, 0, 0, 0], 0.6) == [1, 0, 0, 0, 0]  # at an edge: nothing to take it back to


def test_a_change_moves_to_the_pause_nearby() -> None:
    starts = [0.0, 0.3, 0.6, 1.5, 1.8, 2.1]  # the pause (and the sentence end) is before word 3
    times = [(s, s + 0.25) for s in starts]
    breaks = [False, False, False, True, False, False]
    assert snap(times, breaks, [0, 0, 0, 0, 1, 1], 1.0) == [0, 0, 0, 1, 1, 1]
    assert snap(times, breaks, [0, 0, 1, 1, 1, 1], 1.0) == [0, 0, 0, 1, 1, 1]
    assert snap(times, breaks, [0, 1, 1, 1, 1, 1], 1.0) == [0, 1, 1, 1, 1, 1]  # 1.2 s away: too far to move


def test_one_speaker_or_no_segments_needs_no_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    samples = np.zeros(16_000, dtype=np.float32)
    assert diarize(settings, samples, []) == []
    segs = [segment("just me talking.", 0.0)]
    assert [(s.speaker, s.text) for s in diarize(settings, samples, segs, speakers=1)] == [("S1", "just me talking.")]
    with pytest.raises(ValueError):
        diarize(settings, samples, segs, speakers=0)
    stop = StopToken()
    stop.stop()
    with pytest.raises(Stopped):
        diarize(settings, samples, segs, stop=stop)


def test_failures_are_diarization_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller keeps the transcript on a DiarizationError: a broken encoder, or no voice to hear, must be one."""
    from nexus.media import diarize as module

    settings = Settings(data_dir=tmp_path)
    segs = [segment("is anyone there?", 0.5)]

    def broken(_settings: Settings) -> object:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(module, "load_encoder", broken)
    with pytest.raises(DiarizationError, match="out of memory"):
        diarize(settings, np.zeros(48_000, dtype=np.float32), segs)
    monkeypatch.setattr(module, "load_encoder", lambda _settings: object())
    with pytest.raises(DiarizationError, match="too little speech"):
        diarize(settings, np.zeros(48_000, dtype=np.float32), segs)  # digital silence: nothing to embed


# --- real voices --------------------------------------------------------------------------------------------------

TURNS = [
    ("en+m3", "The lighthouse keeper counted seven ships sailing past the harbor at dawn."),
    ("en+f4", "To bake sourdough bread you need flour, water, salt and a lively starter."),
    ("en+m3", "He wrote every name in a leather notebook and lit the lamp again at dusk."),
    ("en+f4", "Knead the dough gently and let it rise overnight in a cool kitchen."),
    ("en+m3", "Astronomers measured the light of distant galaxies to estimate how fast the universe expands."),
]


@pytest.fixture(scope="module")
def conversation(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Settings, np.ndarray, list[Segment], list[tuple[float, float, str]]]:
    """Two espeak-ng voices (a male and a female variant) taking turns on one channel, transcribed."""
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        pytest.skip("needs espeak-ng and ffmpeg")
    from nexus.media.transcribe import read_channel, transcribe

    root = tmp_path_factory.mktemp("diarize")
    parts, turns, at = [], [], 0.0
    for i, (voice, text) in enumerate(TURNS):
        part = root / f"turn{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(part), text], check=True, capture_output=True)
        with wave.open(str(part), "rb") as w:
            seconds = w.getnframes() / w.getframerate()
        turns.append((at, at + seconds, voice))
        parts.append(part)
        at += seconds
    clip = root / "conversation.wav"
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    graph = "".join(f"[{i}:a]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1[out]"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[out]", "-ac", "1", "-ar", "16000", str(clip))
    settings = Settings(data_dir=root / "var")
    transcript = transcribe(settings, clip)
    return settings, read_channel(clip, 0), transcript.segments, turns


def attributed(segments: list[Segment], turns: list[tuple[float, float, str]]) -> tuple[float, set[str]]:
    """Share of words whose speaker label maps (by majority) to the voice that said them, and the labels used."""
    said = []
    for seg in segments:
        for w in seg.words:
            middle = (w.start + w.end) / 2
            truth = min(
                turns, key=lambda t: 0.0 if t[0] <= middle <= t[1] else min(abs(middle - t[0]), abs(middle - t[1]))
            )
            said.append((seg.speaker or "", truth[2]))
    mapping = {label: Counter(v for lab, v in said if lab == label).most_common(1)[0][0] for label, _v in said}
    assert len(set(mapping.values())) == len(mapping), f"two labels for one voice: {mapping}"
    return sum(mapping[label] == voice for label, voice in said) / len(said), set(mapping)


@pytest.mark.parametrize("speakers", [None, 2])
def test_two_real_voices_are_told_apart(
    conversation: tuple[Settings, np.ndarray, list[Segment], list[tuple[float, float, str]]], speakers: int | None
) -> None:
    settings, samples, segments, turns = conversation
    assert sum(len(s.words) for s in segments) >= 40  # the transcript has words to attribute
    out = diarize(settings, samples, segments, speakers=speakers)
    share, labels = attributed(out, turns)
    assert labels == {"S1", "S2"}
    assert share >= 0.85, share
    assert out[0].speaker == "S1"
    assert sum(len(s.words) for s in out) == sum(len(s.words) for s in segments)  # no word lost or doubled
    assert all(s.start <= s.end for s in out)
