"""Speech to text with faster-whisper: fast English first, every other language it hears second, and the truth
about what it could not transcribe. Models are loaded once per worker process.

The default English model (tiny.en) is fast but deaf to other languages: on them it writes nothing, or English-
sounding nonsense with low word probabilities. So after the English pass, an audit looks for exactly that:
speech (by voice activity) no segment covers, and segments whose words the model itself doubts. Only those
stretches go to the multilingual model, which names their language (per stretch of up to 30 s) and transcribes
the ones that are not English. Clear English costs one English pass plus word timings. Without a multilingual
model the stretches are reported as warnings on the item, never silently dropped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nexus.core.errors import BadInput
from nexus.core.settings import Settings
from nexus.core.stopping import StopToken
from nexus.llm.models import multilingual_whisper_path, whisper_model_path

SAMPLE_RATE = 16_000
WINDOW_S = 30.0  # what Whisper hears at once: language is detected per window of at most this
MIN_GAP_S = 1.0  # uncovered speech shorter than this is a breath, not a lost sentence
# Measured on tiny.en: its hard English sentences average a word probability of 0.57 or more (at most 45 % of
# words under 0.3); what it makes of Spanish, Italian or French averages 0.36 or less (half its words under 0.3).
DOUBT_MEAN = 0.45  # a segment whose mean word probability is below this...
DOUBT_LOW_SHARE = 0.5  # ...or whose words under 0.3 are more than this share, is doubted
MIN_DOUBT_S = 1.0  # doubted stretches at least this long are audited


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    speaker: str | None = None
    language: str | None = None
    words: tuple[Word, ...] = ()
    translation: str | None = None  # English, for speech in another language (when asked for)

    def word_rows(self) -> list[list[Any]]:
        """Word timings as stored (segments' `words` column, drafts): [[word, start, end, probability], ...]."""
        return [[w.word, w.start, w.end, w.probability] for w in self.words]


@dataclass(frozen=True)
class Options:
    """What the user asked for: a forced language, their vocabulary (hotwords), a prompt, and which model:
    `fast` (the English model, with the multilingual one for what it cannot hear) or `multilingual` (the
    multilingual model for everything: slower, better on mostly non-English or heavily accented speech)."""

    language: str | None = None
    hotwords: str | None = None
    prompt: str | None = None
    model: str = "fast"
    translate: bool = False  # an English translation of speech in other languages, beside the transcript


@dataclass
class Transcript:
    language: str
    duration_s: float
    segments: list[Segment]
    languages: dict[str, float] = field(default_factory=dict)  # seconds of speech per language
    warnings: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON form (a re-transcription's draft keeps it until it replaces the item's transcript)."""
        return {
            "language": self.language,
            "duration_s": self.duration_s,
            "languages": self.languages,
            "warnings": self.warnings,
            "models": self.models,
            "segments": [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "speaker": s.speaker,
                    "language": s.language,
                    "words": s.word_rows(),
                    "translation": s.translation,
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            language=data["language"],
            duration_s=data["duration_s"],
            languages=data["languages"],
            warnings=data["warnings"],
            models=data["models"],
            segments=[
                Segment(
                    s["start"],
                    s["end"],
                    s["text"],
                    s["speaker"],
                    s["language"],
                    tuple(Word(*w) for w in s["words"]),
                    s.get("translation"),
                )
                for s in data["segments"]
            ],
        )


_load_lock = threading.Lock()


def detect_device() -> str:
    """`cuda` when a CUDA device is usable by CTranslate2, else `cpu`."""
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


@lru_cache(maxsize=4)
def _model(path: str, device: str) -> Any:
    from faster_whisper import WhisperModel

    compute_type = "float16" if device == "cuda" else "int8"
    return WhisperModel(path, device=device, compute_type=compute_type)


def _device(settings: Settings) -> str:
    # onnxruntime (Silero VAD) writes a cache under ~/.cache unless told otherwise: keep it in the data dir.
    os.environ.setdefault("XDG_CACHE_HOME", str(settings.cache_dir))
    return detect_device() if settings.whisper_device == "auto" else settings.whisper_device


def load_model(settings: Settings) -> Any:
    with _load_lock:
        return _model(str(whisper_model_path(settings)), _device(settings))


def load_multilingual(settings: Settings) -> Any | None:
    with _load_lock:
        path = multilingual_whisper_path(settings)
        return None if path is None else _model(str(path), _device(settings))


def _span(start: float, end: float) -> str:
    return f"{start:.1f} s to {end:.1f} s"


def _segments(
    raw: Any,
    offset: float,
    language: str | None,
    stop: StopToken | None,
    progress: Callable[[float], None] | None = None,
) -> list[Segment]:
    """Segments as they are decoded (lazily: `stop` is checked and progress reported between them)."""
    found = []
    for seg in raw:
        if stop is not None:
            stop.check()
        text = seg.text.strip()
        if not text:
            continue
        words = tuple(
            Word(w.word.strip(), round(w.start + offset, 2), round(w.end + offset, 2), round(w.probability, 3))
            for w in seg.words or ()
            if w.word.strip()
        )
        found.append(
            Segment(round(seg.start + offset, 2), round(seg.end + offset, 2), text, language=language, words=words)
        )
        if progress is not None:
            progress(seg.end + offset)
    return found


def doubtful(segment: Segment) -> bool:
    """The model doubts its own words: what tiny.en does with speech in a language it does not know."""
    if not segment.words:
        return False
    probs = np.array([w.probability for w in segment.words])
    return bool(probs.mean() < DOUBT_MEAN or (probs < 0.3).mean() > DOUBT_LOW_SHARE)


def uncovered(speech: list[tuple[float, float]], segments: list[Segment]) -> list[tuple[float, float]]:
    """Stretches of speech (at least MIN_GAP_S long) that no segment covers."""
    covered = sorted((s.start, s.end) for s in segments)
    gaps = []
    for start, end in speech:
        cursor = start
        for c_start, c_end in covered:
            if c_end <= cursor or c_start >= end:
                continue
            if c_start - cursor >= MIN_GAP_S:
                gaps.append((cursor, c_start))
            cursor = max(cursor, c_end)
        if end - cursor >= MIN_GAP_S:
            gaps.append((cursor, end))
    return gaps


def merge_spans(spans: list[tuple[float, float]], pad: float = 0.3) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        start = max(0.0, start - pad)
        end = end + pad
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def windows(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end) cut into equal pieces of at most WINDOW_S."""
    count = max(1, int(np.ceil((end - start) / WINDOW_S)))
    step = (end - start) / count
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]


def languages_of(segments: list[Segment]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for s in segments:
        if s.language:
            seconds[s.language] = round(seconds.get(s.language, 0.0) + (s.end - s.start), 2)
    return seconds


def transcribe(
    settings: Settings,
    audio: Path,
    on_progress: Callable[[float, float], None] | None = None,
    stop: StopToken | None = None,
    options: Options | None = None,
) -> Transcript:
    """Blocking. `on_progress(seconds_done, total_seconds)` is called after each segment; `stop` is checked
    there too, so a cancelled transcription ends within one segment instead of running to the end."""
    return _transcribe(settings, load_audio(audio), on_progress, stop, options or Options())


def load_audio(audio: Path) -> np.ndarray:
    """A file's sound as 16 kHz mono float32, what every model here hears."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(audio), sampling_rate=SAMPLE_RATE)


CHANNEL_BLOCK_FRAMES = 16000 * 60  # a minute of frames at a time


def channel_count(path: Path) -> int:
    import wave

    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels()


def read_channel(path: Path, index: int) -> np.ndarray:
    """One channel of a 16 kHz PCM WAV as float32, read a minute at a time: only that channel is ever whole in
    memory (4 hours of 8 channels read at once peaked near 5 GB)."""
    import wave

    with wave.open(str(path), "rb") as wav:
        count, total = wav.getnchannels(), wav.getnframes()
        out = np.empty(total, dtype=np.float32)
        done = 0
        while done < total and (frames := wav.readframes(CHANNEL_BLOCK_FRAMES)):
            block = np.frombuffer(frames, dtype=np.int16).reshape(-1, count)[:, index]
            out[done : done + len(block)] = block / 32768.0
            done += len(block)
    return out[:done]


def transcribe_channels(
    settings: Settings,
    channels_wav: Path,
    on_progress: Callable[[float, float], None] | None = None,
    stop: StopToken | None = None,
    options: Options | None = None,
) -> Transcript:
    """One transcript per channel (a speaker per channel: phone calls, interviews, meeting tools), labelled
    S1, S2, ... by channel and merged in time order: overlapping speech is kept, not mixed away."""
    count = channel_count(channels_wav)
    merged: list[Segment] = []
    warnings: list[str] = []
    models: list[str] = []
    duration = 0.0
    for i in range(count):
        samples = read_channel(channels_wav, i)  # one at a time: the previous channel's samples are freed
        duration = len(samples) / SAMPLE_RATE
        label = f"S{i + 1}"

        def progress(done: float, _total: float, i: int = i, duration: float = duration) -> None:
            if on_progress and duration:
                on_progress((i + done / duration) * duration / count, duration)

        part = _transcribe(settings, samples, progress, stop, options or Options())
        merged += [replace(s, speaker=label) for s in part.segments]
        warnings += [f"{label} (channel {i + 1}): {w}" for w in part.warnings]
        models += [m for m in part.models if m not in models]
    return _result(sorted(merged, key=lambda s: (s.start, s.speaker or "")), duration, warnings, models, "en")


def _transcribe(
    settings: Settings,
    samples: np.ndarray,
    on_progress: Callable[[float, float], None] | None,
    stop: StopToken | None,
    options: Options,
) -> Transcript:
    heard = _hear(settings, samples, on_progress, stop, options)
    if options.translate:
        add_translation(settings, samples, heard, stop)
    return heard


def add_translation(settings: Settings, samples: np.ndarray, transcript: Transcript, stop: StopToken | None) -> None:
    """English beside every segment in another language (see `translate`), or a warning saying why not. Run it
    on the final segments (after speaker labels split them): a translation belongs to the segment it was made for."""
    if all(s.language in (None, "en") for s in transcript.segments):
        return
    model = load_multilingual(settings)
    if model is None:
        transcript.warnings.append(
            "no English translation: it needs a multilingual model (NEXUS_WHISPER_MULTILINGUAL_MODEL)"
        )
        return
    transcript.segments = translate(model, samples, transcript.segments, stop)
    transcript.models += [f"{_name(settings, False)} (translate)"]


def translate(model: Any, samples: np.ndarray, segments: list[Segment], stop: StopToken | None) -> list[Segment]:
    """English for each segment in another language, from Whisper's translate task on the audio (not on the
    transcript text). Runs of adjacent segments in one language are translated in windows of up to 30 s (never
    across speech in another language), and each translated sentence goes to the segment it overlaps most."""
    out = list(segments)
    runs: list[list[int]] = []
    for i, seg in enumerate(segments):
        if seg.language in (None, "en"):
            continue
        run = runs[-1] if runs else None
        adjacent = run is not None and run[-1] == i - 1 and segments[run[-1]].language == seg.language
        if run and adjacent and seg.end - segments[run[0]].start <= WINDOW_S:
            run.append(i)
        else:
            runs.append([i])
    for run in runs:
        if stop is not None:
            stop.check()
        start, end = segments[run[0]].start, max(segments[i].end for i in run)
        raw, _info = model.transcribe(
            _piece(samples, start, end),
            task="translate",
            language=segments[run[0]].language,
            beam_size=1,
            condition_on_previous_text=False,
        )
        parts: dict[int, list[str]] = {i: [] for i in run}
        for piece in raw:
            a, b, text = piece.start + start, piece.end + start, piece.text.strip()
            if not text:
                continue
            best = max(run, key=lambda i: min(b, segments[i].end) - max(a, segments[i].start))
            if min(b, segments[best].end) - max(a, segments[best].start) > 0:  # else it is nobody's speech
                parts[best].append(text)
        for i, texts in parts.items():
            out[i] = replace(segments[i], translation=" ".join(texts) or None)
    return out


def _hear(
    settings: Settings,
    samples: np.ndarray,
    on_progress: Callable[[float, float], None] | None,
    stop: StopToken | None,
    options: Options,
) -> Transcript:
    duration = len(samples) / SAMPLE_RATE
    primary = load_model(settings)
    common = {"beam_size": 1, "word_timestamps": True, "hotwords": options.hotwords, "initial_prompt": options.prompt}

    def progress(done: float) -> None:
        if on_progress:
            on_progress(min(done, duration), duration)

    wants_multilingual = options.model == "multilingual" or bool(options.language and options.language != "en")
    if primary.model.is_multilingual or wants_multilingual:
        model = primary if primary.model.is_multilingual else load_multilingual(settings)
        if model is None:
            asked = f"language={options.language}" if options.language else "model=multilingual"
            raise BadInput(
                f"{asked} needs a multilingual model, and none is configured (NEXUS_WHISPER_MULTILINGUAL_MODEL=none)"
            )
        segments = _multilingual(model, samples, [(0.0, duration)], options, common, stop, progress)
        return _result(segments, duration, [], [_name(settings, model is primary)], options.language)

    # Greedy only: on speech it cannot understand, tiny.en's temperature fallback re-decodes each window up to five
    # times (15 s instead of 3 s on a 17 s clip); the audit below is the better fallback.
    # Voice activity once (it costs ~5 % of a tiny.en pass): the English pass reads only the speech, and the
    # audit checks what of the speech it covered.
    speech = _speech(samples)
    if not speech:
        return _result([], duration, [], [_name(settings, True)], options.language or "en")
    clips = [t for start, end in speech for t in (start, end)]
    raw, _info = primary.transcribe(samples, vad_filter=False, clip_timestamps=clips, temperature=0.0, **common)
    segments = _segments(raw, 0.0, "en", stop, progress)
    models = [_name(settings, True)]
    if options.language == "en":
        return _result(segments, duration, [], models, "en")
    return _audit(settings, samples, duration, speech, segments, options, common, stop, models)


def _speech(samples: np.ndarray) -> list[tuple[float, float]]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=500, speech_pad_ms=200))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found]


def _name(settings: Settings, primary: bool) -> str:
    if primary:
        return settings.whisper_model or "tiny.en"
    return settings.whisper_multilingual_model or "base (multilingual)"


def _audit(
    settings: Settings,
    samples: np.ndarray,
    duration: float,
    speech: list[tuple[float, float]],
    segments: list[Segment],
    options: Options,
    common: dict[str, Any],
    stop: StopToken | None,
    models: list[str],
) -> Transcript:
    gaps = uncovered(speech, segments)
    doubted = [
        (a, b) for a, b in merge_spans([(s.start, s.end) for s in segments if doubtful(s)]) if b - a >= MIN_DOUBT_S
    ]
    suspect = merge_spans(gaps + doubted)
    if not suspect:
        return _result(segments, duration, [], models, "en")
    multilingual = load_multilingual(settings)
    if multilingual is None:
        reported = [
            f"speech at {_span(a, b)} was not transcribed: it does not sound like English, and no multilingual "
            "model is configured (NEXUS_WHISPER_MULTILINGUAL_MODEL=none)"
            for a, b in merge_spans(gaps, pad=0)
        ] + [
            f"{_span(a, b)} was transcribed with low confidence: it may be another language, and no "
            "multilingual model is configured"
            for a, b in doubted
        ]
        return _result(segments, duration, reported, models, "en")
    # Each suspect window's language first. A foreign window then grows over the English pass's neighbouring
    # segments that are not confidently English (tiny.en's renderings of foreign speech are not always doubted
    # enough), and is transcribed by the multilingual model in its language; English speech the English pass
    # missed is transcribed too. English it already wrote down stays as it is.
    warnings: list[str] = []
    heard = _languages(multilingual, samples, suspect, options, stop)
    todo: list[tuple[float, float, str]] = []
    for start, end, language in heard:
        if language == "en":
            if any(a < end and b > start for a, b in gaps):
                todo.append((start, end, language))
            continue
        todo.append((*grow(start, end, segments), language))
    for span_start, span_end, language in merge_languages(todo):
        forced = Options(language=language, hotwords=options.hotwords, prompt=options.prompt)
        for start, end, _lang, found in _windows(multilingual, samples, [(span_start, span_end)], forced, common, stop):
            if not found:
                warnings.append(f"speech at {_span(start, end)} sounds like {language} but could not be transcribed")
                continue
            segments = [s for s in segments if not start <= (s.start + s.end) / 2 < end] + found
    models.append(_name(settings, False))
    return _result(segments, duration, warnings, models, "en")


SURE_MEAN = 0.65  # a segment whose words average this probability is confidently English


def grow(start: float, end: float, segments: list[Segment]) -> tuple[float, float]:
    """Widen a foreign window over the adjacent segments (within 1.5 s) that are not confidently English."""
    ordered = sorted(segments, key=lambda s: s.start)

    def unsure(s: Segment) -> bool:
        return bool(s.words) and float(np.mean([w.probability for w in s.words])) < SURE_MEAN

    changed = True
    while changed:
        changed = False
        for s in ordered:
            if unsure(s) and s.end > start - 1.5 and s.start < start:
                start, changed = s.start, True
            if unsure(s) and s.start < end + 1.5 and s.end > end:
                end, changed = s.end, True
    return start, end


def merge_languages(spans: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Overlapping spans of the same language as one."""
    merged: list[tuple[float, float, str]] = []
    for start, end, language in sorted(spans):
        if merged and merged[-1][2] == language and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end), language)
        else:
            merged.append((start, end, language))
    return merged


def _languages(
    model: Any, samples: np.ndarray, spans: list[tuple[float, float]], options: Options, stop: StopToken | None
) -> list[tuple[float, float, str]]:
    """Each span in windows of up to 30 s, with the window's language (forced, or detected)."""
    found = []
    for span_start, span_end in spans:
        for start, end in windows(span_start, span_end):
            if stop is not None:
                stop.check()
            language = options.language
            if language is None:
                language, _probability, _all = model.detect_language(_piece(samples, start, end))
            found.append((start, end, language))
    return found


def _piece(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    return samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def _windows(
    model: Any,
    samples: np.ndarray,
    spans: list[tuple[float, float]],
    options: Options,
    common: dict[str, Any],
    stop: StopToken | None,
) -> list[tuple[float, float, str, list[Segment]]]:
    """Each window of `_languages`, transcribed in its language."""
    found = []
    for start, end, language in _languages(model, samples, spans, options, stop):
        raw, _info = model.transcribe(
            _piece(samples, start, end), language=language, condition_on_previous_text=False, vad_filter=True, **common
        )
        found.append((start, end, language, _segments(raw, start, language, stop)))
    return found


def _multilingual(
    model: Any,
    samples: np.ndarray,
    spans: list[tuple[float, float]],
    options: Options,
    common: dict[str, Any],
    stop: StopToken | None,
    progress: Callable[[float], None],
) -> list[Segment]:
    segments: list[Segment] = []
    for _start, end, _language, found in _windows(model, samples, spans, options, common, stop):
        segments += found
        progress(end)
    return segments


def untangle(segments: list[Segment]) -> list[Segment]:
    """Segments in time order, one speaker's never overlapping: where two passes meet (clip edges, a window the
    multilingual model redid), the earlier segment ends where the next begins. Different speakers may overlap."""
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    last_of: dict[str | None, int] = {}
    out: list[Segment] = []
    for seg in ordered:
        i = last_of.get(seg.speaker)
        if i is not None and out[i].end > seg.start:
            prev = out[i]
            cut = max(seg.start, round(prev.start + 0.01, 2))
            out[i] = replace(prev, end=cut)
            if cut > seg.start:  # the earlier one starts at the same moment: start this one after it
                seg = replace(seg, start=cut, end=max(seg.end, round(cut + 0.01, 2)))
        last_of[seg.speaker] = len(out)
        out.append(seg)
    return out


def _result(
    segments: list[Segment], duration: float, warnings: list[str], models: list[str], fallback: str | None
) -> Transcript:
    segments = untangle(segments)
    languages = languages_of(segments)
    dominant = max(languages, key=lambda k: languages[k]) if languages else (fallback or "en")
    return Transcript(
        language=dominant,
        duration_s=duration,
        segments=segments,
        languages=languages,
        warnings=warnings,
        models=models,
    )
