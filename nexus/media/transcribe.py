"""Speech to text with faster-whisper. The model is loaded once per worker process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nexus.core.settings import Settings
from nexus.core.stopping import StopToken
from nexus.llm.models import whisper_model_path


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    speaker: str | None = None  # filled by a diarizer when one is configured


@dataclass(frozen=True)
class Transcript:
    language: str
    duration_s: float
    segments: list[Segment]


_load_lock = threading.Lock()


def detect_device() -> str:
    """`cuda` when a CUDA device is usable by CTranslate2, else `cpu`."""
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


@lru_cache(maxsize=2)
def _model(path: str, device: str):
    from faster_whisper import WhisperModel

    compute_type = "float16" if device == "cuda" else "int8"
    return WhisperModel(path, device=device, compute_type=compute_type)


def load_model(settings: Settings):
    # onnxruntime (Silero VAD) writes a cache under ~/.cache unless told otherwise: keep it in the data dir.
    os.environ.setdefault("XDG_CACHE_HOME", str(settings.cache_dir))
    device = detect_device() if settings.whisper_device == "auto" else settings.whisper_device
    with _load_lock:
        return _model(str(whisper_model_path(settings)), device)


def transcribe(
    settings: Settings,
    audio: Path,
    on_progress: Callable[[float, float], None] | None = None,
    stop: StopToken | None = None,
) -> Transcript:
    """Blocking. `on_progress(seconds_done, total_seconds)` is called after each segment; `stop` is checked
    there too, so a cancelled transcription ends within one segment instead of running to the end."""
    model = load_model(settings)
    segments_iter, info = model.transcribe(str(audio), vad_filter=True, beam_size=1)
    segments: list[Segment] = []
    for seg in segments_iter:
        if stop is not None:
            stop.check()
        text = seg.text.strip()
        if text:
            segments.append(Segment(start=round(seg.start, 2), end=round(seg.end, 2), text=text))
        if on_progress:
            on_progress(min(seg.end, info.duration), info.duration)
    return Transcript(language=info.language, duration_s=info.duration, segments=segments)
