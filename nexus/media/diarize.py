"""Who speaks when, on one channel: speaker labels for a transcript whose voices share a single track.

Recordings with a speaker per channel are labelled by channel (`transcribe_channels`); this is for the rest: a
mono podcast, a meeting recorded by one microphone. The voice encoder of `resemblyzer` (a d-vector LSTM whose
weights ship inside its wheel, so nothing is downloaded) embeds overlapping 1.5 s windows of speech; the windows
are clustered (agglomerative, cosine distance, average linkage; the count estimated unless given); each word takes
the speaker of the window nearest it, and the words then say exactly where a turn changed (at a pause or a
sentence's end near where the windows put it). Segments are split where the speaker changes between words. Labels
are S1, S2, ... in order of first appearance, like the per-channel labels, so naming speakers works the same.

Deterministic: no sampling anywhere (the encoder runs in inference mode, the clustering is a fixed tree).
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nexus.core.settings import Settings
from nexus.core.stopping import Stopped, StopToken
from nexus.media.transcribe import SAMPLE_RATE, Segment, Transcript, Word, _device, _speech
from nexus.media.vocabulary import NO_SPACES

WINDOW_S = 1.5  # what one embedding hears: long enough for a stable voice print, short enough for quick turns
HOP_S = 0.75  # windows overlap by half: a turn change is located to within this
MIN_WINDOW_S = 0.5  # speech shorter than this says too little about the voice to embed on its own
FRAME_S = 0.01  # the encoder's mel frames (10 ms hop)
MIN_SEPARATION = 0.12  # cosine distance between two voices' centroids below which they are one (see _apart)
NOISE_SEPARATION = 0.45  # ...times sqrt(1/n1 + 1/n2): what two voices of n1 and n2 windows must be apart at least
MIN_RUN = 3  # contiguous windows a voice must win somewhere to be a speaker (3 s of speech: see cluster)
MAX_SPEAKERS = 8  # when the count is estimated
MAX_CLUSTERED = 3000  # windows clustered directly (pairwise distances grow with the square); more are sampled
MIN_TURN_S = 0.6  # a run of words shorter than this between two runs of one speaker is that speaker's
SNAP_S = 1.0  # a change of speaker moves to the likeliest word boundary within this (see snap)
BREAK_S = 0.3  # a sentence's or segment's end counts as a pause this much longer
SENTENCE_ENDS = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # and the CJK full stop, question, exclamation marks
BATCH = 128  # windows per forward pass of the encoder
MAX_PIECE_S = 120.0  # speech embedded at once, at most (librosa's STFT of it is held whole: 10 MB a minute)


class DiarizationError(Exception):
    """Speakers could not be told apart (no usable speech, or the encoder failed): the transcript stands without."""


_load_lock = threading.Lock()
_encoders: dict[str, Any] = {}


def load_encoder(settings: Settings) -> Any:
    """The voice encoder, loaded once per process, device and weights (concurrent callers share one load).
    `NEXUS_DIARIZER_MODEL` may point at other weights in resemblyzer's format; by default, the wheel's own."""
    device = _device(settings)
    weights = settings.diarizer_model
    key = f"{device}:{weights}"
    with _load_lock:
        if key not in _encoders:
            import torch

            with warnings.catch_warnings():
                # webrtcvad (imported by resemblyzer) imports the deprecated pkg_resources, and resemblyzer a
                # deprecated scipy namespace: neither is ours to fix, and neither matters here.
                warnings.filterwarnings("ignore", message=".*pkg_resources", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*scipy.ndimage", category=DeprecationWarning)
                from resemblyzer import VoiceEncoder, wav_to_mel_spectrogram  # type: ignore[import-untyped]

            # CTranslate2 may see a GPU that this torch build cannot use (a CPU wheel): then the CPU it is.
            torch_device = torch.device("cuda" if device == "cuda" and torch.cuda.is_available() else "cpu")
            encoder = VoiceEncoder(torch_device, verbose=False, weights_fpath=Path(weights) if weights else None)
            encoder.eval()
            wav_to_mel_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))  # librosa's first call costs 2-3 s
            _encoders[key] = encoder
        return _encoders[key]


def label_speakers(
    settings: Settings,
    samples: np.ndarray,
    transcript: Transcript,
    speakers: int | None,
    stop: StopToken | None = None,
) -> None:
    """Blocking. Speaker labels on `transcript` (transcribed from the mono `samples`); when diarization fails,
    the transcript stands without them and says why in its warnings."""
    try:
        transcript.segments = diarize(settings, samples, transcript.segments, speakers, stop)
    except Stopped:
        raise
    except Exception as exc:  # whatever went wrong, the words are still right: keep them
        transcript.warnings.append(f"speakers were not labelled: {exc}. The transcript is complete without them.")
        return
    transcript.models.append("resemblyzer (speakers)")


def diarize(
    settings: Settings,
    samples: np.ndarray,
    segments: list[Segment],
    speakers: int | None = None,
    stop: StopToken | None = None,
) -> list[Segment]:
    """Blocking. `samples`: the 16 kHz mono float32 audio `segments` were transcribed from. Returns the segments
    with `speaker` set (S1, S2, ... by first appearance), split where the speaker changes between words.
    `speakers`: how many there are, when known (exactly that many labels at most); else the count is estimated.
    `stop` is checked between steps and between batches of windows. Raises DiarizationError when there is no
    speech to tell voices apart by, or the encoder fails."""
    if speakers is not None and speakers < 1:
        raise ValueError(f"speakers must be at least 1, not {speakers}")
    if not segments:
        return []
    if speakers == 1:
        return assign(segments, [(0.0, len(samples) / SAMPLE_RATE)], [0])
    _check(stop)
    try:
        # Voice activity again (about 5 % of a tiny.en pass) rather than the segments' spans: Whisper's segment
        # times are loose at the edges, and windows should hold voice, not the silence between turns.
        regions = _speech(samples) or [(s.start, s.end) for s in segments]
        _check(stop)
        encoder = load_encoder(settings)
        spans, embeddings = embed_windows(encoder, samples, regions, stop)
    except Stopped:
        raise
    except Exception as exc:  # the models' failures (a broken install, out of memory): the transcript stands
        raise DiarizationError(f"voice activity or the voice encoder failed: {exc}") from exc
    if not spans:
        raise DiarizationError("too little speech to tell speakers apart")
    _check(stop)
    labels = cluster(embeddings, speakers, spans)
    _check(stop)
    return assign(segments, spans, labels.tolist())


def _check(stop: StopToken | None) -> None:
    if stop is not None:
        stop.check()


def window_frames(frames: int, window: int, hop: int, shortest: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the windows over a region `frames` long: every `hop`, plus one ending at the
    region's end when the last hop left more than a quarter window unheard; a region shorter than a window (and at
    least `shortest`) is one window of its own length."""
    if frames < shortest:
        return []
    if frames <= window:
        return [(0, frames)]
    found = [(start, start + window) for start in range(0, frames - window + 1, hop)]
    if frames - found[-1][1] > window // 4:
        found.append((frames - window, frames))
    return found


def embed_windows(
    encoder: Any, samples: np.ndarray, regions: Sequence[tuple[float, float]], stop: StopToken | None = None
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Windows over the speech regions (in time order) and their voice embeddings ((n, 256), L2-normed).

    Each region (in pieces of at most MAX_PIECE_S, which bounds the spectrogram's memory) is scaled to the
    encoder's training loudness, -30 dBFS, in both directions: a loud and a quiet speaker then differ by voice, not
    by level. Full windows go through the encoder in batches as they come; the shorter last window of a short
    region waits for the others of its length (at most one per region, of at most a hundred lengths)."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*scipy.ndimage", category=DeprecationWarning)
        from resemblyzer import wav_to_mel_spectrogram

    window, hop, shortest = round(WINDOW_S / FRAME_S), round(HOP_S / FRAME_S), round(MIN_WINDOW_S / FRAME_S)
    spans: list[tuple[float, float]] = []
    found: dict[int, np.ndarray] = {}
    waiting: dict[int, list[tuple[int, np.ndarray]]] = {}  # window length -> (index, mel) not yet embedded

    def embed(batch: list[tuple[int, np.ndarray]]) -> None:
        _check(stop)
        with torch.inference_mode():
            mels = torch.from_numpy(np.stack([mel for _i, mel in batch])).to(encoder.device)
            for (i, _mel), vector in zip(batch, encoder(mels).cpu().numpy(), strict=True):
                found[i] = vector

    for start_s, end_s in _pieces(regions, len(samples) / SAMPLE_RATE):
        audio = np.asarray(samples[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)], dtype=np.float32)
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
        if rms <= 1e-5:  # digital silence: no voice to hear
            continue
        mel = wav_to_mel_spectrogram(audio * np.float32(10 ** (-30 / 20) / rms))  # (frames, 40)
        for a, b in window_frames(len(mel), window, hop, shortest):
            spans.append((round(start_s + a * FRAME_S, 2), round(start_s + b * FRAME_S, 2)))
            pending = waiting.setdefault(b - a, [])
            pending.append((len(spans) - 1, mel[a:b]))
            if len(pending) >= BATCH:
                embed(pending)
                pending.clear()
    for pending in waiting.values():
        if pending:
            embed(pending)
    if not spans:
        return [], np.zeros((0, 256), dtype=np.float32)
    return spans, np.nan_to_num(np.stack([found[i] for i in range(len(spans))]))  # (0/0 on a silent window)


def _pieces(regions: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """The regions within [0, duration], sorted, a long one cut into pieces of at most MAX_PIECE_S."""
    out = []
    for start, end in sorted(regions):
        start, end = max(0.0, start), min(duration, end)
        count = max(1, int(np.ceil((end - start) / MAX_PIECE_S)))
        step = (end - start) / count
        out += [(start + i * step, start + (i + 1) * step) for i in range(count) if end > start]
    return out


def cluster(
    embeddings: np.ndarray,
    speakers: int | None = None,
    spans: Sequence[tuple[float, float]] | None = None,
    max_speakers: int = MAX_SPEAKERS,
) -> np.ndarray:
    """A cluster id per embedding (0, 1, ... in order of first appearance). Rows are windows in time order;
    `spans` their times (windows that overlap the next one are contiguous speech), else all rows are contiguous.

    Agglomerative clustering with cosine distance and average linkage proposes clusters, cut ever deeper; every
    window then joins the nearest of the clusters that are voices, by centroid. A voice holds the floor: it wins
    MIN_RUN contiguous windows somewhere (a turn of 3 s or more). The windows that straddle a turn change hear
    both voices and gather in clusters of their own, between the two and as far from each as two similar voices
    are; but they never come more than two in a row (two windows cover any instant), so this keeps them out, as it
    keeps out a laugh or a cough. Without it, they took a label of their own in every two-voice test clip.

    `speakers` given: the shallowest cut with that many voices (or, with too few windows, the largest clusters).
    Else the count is estimated: the cut goes deeper while every two voices stay `_apart`, and the deepest such
    cut sets the count, up to `max_speakers`."""
    from scipy.cluster.hierarchy import fcluster, linkage  # type: ignore[import-untyped]

    count = len(embeddings)
    if count <= 1 or speakers == 1:
        return np.zeros(count, dtype=np.int64)
    vectors = _normed(np.asarray(embeddings, dtype=np.float64).reshape(count, -1))
    if spans is None:
        contiguous = np.ones(count - 1, dtype=bool)
    else:
        bounds = np.asarray(spans, dtype=np.float64).reshape(count, 2)
        contiguous = bounds[1:, 0] < bounds[:-1, 1]
    # Long recordings: the tree over an even sample (pairwise distances grow with the square of the count).
    sample = vectors[:: int(np.ceil(count / MAX_CLUSTERED))]
    tree = linkage(sample, method="average", metric="cosine")
    deepest = min(len(sample), 6 * max(max_speakers, speakers or 0))
    chosen = _normed(sample.mean(axis=0, keepdims=True))
    for k in range(2, deepest + 1):
        cut = fcluster(tree, t=k, criterion="maxclust")
        sizes = Counter(cut.tolist())
        ranked = sorted(sizes, key=lambda c: (-sizes[c], c))
        sized = [c for c in ranked if sizes[c] >= MIN_RUN]
        voices = _centroids(sample, cut, sized)
        voices = voices[_floor_holders(vectors, voices, contiguous)]
        if speakers is not None:
            if len(voices) >= speakers:
                chosen = voices[:speakers]
                break
            if k == deepest:  # too few windows for that many voices: the largest clusters
                chosen = _centroids(sample, cut, ranked[:speakers])
            continue
        if len(voices) > max_speakers or not _apart(vectors, voices):
            break
        if len(voices) > len(chosen):
            chosen = voices
    return _first_appearance(np.argmax(vectors @ chosen.T, axis=1))


def _apart(vectors: np.ndarray, centroids: np.ndarray) -> bool:
    """Whether every two of the voices are far enough apart to be two speakers: their centroids at least
    MIN_SEPARATION apart (cosine distance), and further when they are centroids of few windows, which are noisy:
    NOISE_SEPARATION * sqrt(1/n1 + 1/n2) for voices of n1 and n2 windows.

    Centroids, not the linkage distance: the two halves of one voice's windows have centroids 0.05-0.09 apart, two
    voices 0.13 (two similar synthetic men) to 0.36, while the average-linkage distance of one voice's halves (up
    to 0.32) nearly reaches that of two voices (0.31-0.50). But a small part split off one voice (a turn at another
    pitch, or quieter, so noisier) lies further from the rest: 12-27 windows at 0.09-0.12, 4-7 windows up to 0.24;
    scaled by their size they stay under NOISE_SEPARATION. Tuned on 129 espeak-ng clips (1-4 voices, 20 s to 3 min,
    0.1-0.8 s between turns; in the 3 min ones each turn at one of three pitches, speeds and levels, over noise):
    one voice was never split (65 clips), two were always found (45), three distinct ones too (7); four were four in
    3 of 6 clips, else three; two voices on espeak-ng's one f2 variant counted as one. The margins are thin
    (0.40 split one 3-minute voice in two, 0.50 merged the two similar men in one clip), and real voices differ
    more than espeak-ng's (but are recorded less cleanly). The silhouette, the other usual rule, picked 2 of 3
    voices when two of them were similar."""
    if len(centroids) < 2:
        return True
    nearest = np.argmax(vectors @ centroids.T, axis=1)
    sizes = np.maximum(np.bincount(nearest, minlength=len(centroids)), 1).astype(np.float64)
    needed = np.maximum(MIN_SEPARATION, NOISE_SEPARATION * np.sqrt(1 / sizes[:, None] + 1 / sizes[None, :]))
    distances = 1.0 - centroids @ centroids.T
    upper = np.triu_indices(len(centroids), k=1)
    return bool((distances[upper] >= needed[upper]).all())


def _floor_holders(vectors: np.ndarray, centroids: np.ndarray, contiguous: np.ndarray) -> np.ndarray:
    """Which centroids win at least MIN_RUN contiguous windows in a row (indices, in the centroids' order)."""
    if len(centroids) == 0:
        return np.zeros(0, dtype=np.int64)
    nearest = np.argmax(vectors @ centroids.T, axis=1)
    longest = np.zeros(len(centroids), dtype=np.int64)
    run = 1
    for i, label in enumerate(nearest.tolist()):
        run = run + 1 if i > 0 and contiguous[i - 1] and nearest[i - 1] == label else 1
        longest[label] = max(longest[label], run)
    return np.flatnonzero(longest >= MIN_RUN)


def _centroids(vectors: np.ndarray, labels: np.ndarray, clusters: Sequence[int]) -> np.ndarray:
    """The normed mean vector of each of `clusters`, one row each."""
    if not clusters:
        return np.zeros((0, vectors.shape[1]))
    return _normed(np.stack([vectors[labels == c].mean(axis=0) for c in clusters]))


def _normed(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def assign(
    segments: list[Segment],
    spans: Sequence[tuple[float, float]],
    labels: Sequence[int],
    min_turn_s: float = MIN_TURN_S,
    snap_s: float = SNAP_S,
) -> list[Segment]:
    """The segments with speakers from labelled windows (`spans[i]` heard speaker `labels[i]`).

    Each word takes the label of the window whose centre is nearest its midpoint, among the windows that cover it
    (else among all). A run of words shorter than `min_turn_s` between two runs of one speaker becomes that
    speaker's (`smooth`), and each remaining change moves to the likeliest word boundary within `snap_s` (`snap`).
    A segment is split where its words change speaker; a segment without words takes the label the windows within
    it heard longest. Labels become S1, S2, ... in order of first appearance."""
    if len(spans) != len(labels):
        raise ValueError(f"{len(spans)} windows but {len(labels)} labels")
    if not segments:
        return []
    if not spans:
        raise DiarizationError("no labelled speech to assign speakers from")
    bounds = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    ids = np.asarray(labels, dtype=np.int64)
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    words = [(i, w) for i, s in enumerate(ordered) for w in s.words]
    words.sort(key=lambda iw: (iw[1].start, iw[1].end))
    word_labels = [_label_at(bounds, ids, (w.start + w.end) / 2) for _i, w in words]
    times = [(w.start, w.end) for _i, w in words]
    word_labels = smooth(times, word_labels, min_turn_s)
    breaks = [
        n > 0 and (words[n - 1][0] != i or words[n - 1][1].word.endswith(SENTENCE_ENDS))
        for n, (i, _w) in enumerate(words)
    ]
    word_labels = snap(times, breaks, word_labels, snap_s)
    per_segment: dict[int, list[tuple[Word, int]]] = {}
    for (i, w), label in zip(words, word_labels, strict=True):
        per_segment.setdefault(i, []).append((w, label))
    pieces: list[tuple[Segment, int]] = []
    for i, seg in enumerate(ordered):
        labelled = per_segment.get(i)
        if not labelled:
            pieces.append((seg, _majority(bounds, ids, seg.start, seg.end)))
            continue
        runs = _runs(labelled)
        if len(runs) == 1:
            pieces.append((seg, runs[0][1]))
            continue
        for n, (run, label) in enumerate(runs):
            start = seg.start if n == 0 else run[0].start
            end = seg.end if n == len(runs) - 1 else run[-1].end
            joiner = "" if seg.language in NO_SPACES else " "
            text = joiner.join(w.word for w in run)
            pieces.append((Segment(start, max(end, start), text, None, seg.language, tuple(run)), label))
    pieces.sort(key=lambda p: (p[0].start, p[0].end))
    names: dict[int, str] = {}
    out = []
    for seg, label in pieces:
        name = names.setdefault(label, f"S{len(names) + 1}")
        out.append(replace(seg, speaker=name))
    return out


def _label_at(bounds: np.ndarray, ids: np.ndarray, t: float) -> int:
    centres = bounds.mean(axis=1)
    distance = np.abs(centres - t)
    covering = (bounds[:, 0] <= t) & (t <= bounds[:, 1])
    if covering.any():
        distance = np.where(covering, distance, np.inf)
    return int(ids[int(np.argmin(distance))])


def _majority(bounds: np.ndarray, ids: np.ndarray, start: float, end: float) -> int:
    """The label heard longest over [start, end) (overlap-weighted), else the one nearest its middle."""
    overlap = np.clip(np.minimum(bounds[:, 1], end) - np.maximum(bounds[:, 0], start), 0, None)
    if overlap.sum() <= 0:
        return _label_at(bounds, ids, (start + end) / 2)
    totals: dict[int, float] = {}
    for label, seconds in zip(ids.tolist(), overlap.tolist(), strict=True):
        totals[label] = totals.get(label, 0.0) + seconds
    return max(totals, key=lambda k: (totals[k], -k))


def smooth(times: Sequence[tuple[float, float]], labels: Sequence[int], min_turn_s: float) -> list[int]:
    """Runs shorter than `min_turn_s` between two runs of one other label take that label (shortest first)."""
    out = list(labels)
    changed = True
    while changed:
        changed = False
        runs: list[tuple[int, int]] = []  # [first, last] word index of each run
        for i, label in enumerate(out):
            if runs and out[runs[-1][0]] == label:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        candidates = [
            (times[last][1] - times[first][0], n)
            for n, (first, last) in enumerate(runs)
            if 0 < n < len(runs) - 1
            and out[runs[n - 1][0]] == out[runs[n + 1][0]]
            and times[last][1] - times[first][0] < min_turn_s
        ]
        if candidates:
            _duration, n = min(candidates)
            first, last = runs[n]
            out[first : last + 1] = [out[runs[n - 1][0]]] * (last - first + 1)
            changed = True
    return out


def snap(
    times: Sequence[tuple[float, float]], breaks: Sequence[bool], labels: Sequence[int], within: float
) -> list[int]:
    """Each change of label moved to the likeliest place for a turn to change within `within` seconds (and between
    the changes before and after it): the longest pause between two words there, where a pause after the end of a
    sentence or segment (`breaks[n]`: before word n) counts BREAK_S more. The windows place a change only to within
    a window; the words say where it was (the first word or two of a turn had the previous speaker's label
    without this)."""
    out = list(labels)
    changes = [n for n in range(1, len(out)) if out[n] != out[n - 1]]
    for k, n in enumerate(changes):
        low = changes[k - 1] + 1 if k > 0 else 1
        high = changes[k + 1] - 1 if k + 1 < len(changes) else len(out) - 1
        at = times[n][0]

        def strength(m: int) -> float:
            return max(0.0, times[m][0] - times[m - 1][1]) + (BREAK_S if breaks[m] else 0.0)

        near = [m for m in range(low, high + 1) if abs(times[m][0] - at) <= within]
        best = max(near, key=lambda m: (strength(m), -abs(m - n)), default=n)
        if strength(best) > strength(n):
            before, after = out[n - 1], out[n]
            for m in range(min(n, best), max(n, best)):
                out[m] = after if best < n else before
            changes[k] = best
    return out


def _runs(labelled: list[tuple[Word, int]]) -> list[tuple[list[Word], int]]:
    runs: list[tuple[list[Word], int]] = []
    for word, label in labelled:
        if runs and runs[-1][1] == label:
            runs[-1][0].append(word)
        else:
            runs.append(([word], label))
    return runs
