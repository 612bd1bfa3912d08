"""Long-term memory with Mem0, embedded: vectors in our Postgres (pgvector), our local MiniLM, telemetry off.

With a generative model configured Mem0 extracts facts (infer=True, bounded timeout); offline it stores what the
user said verbatim (infer=False). Memories are keyed by the Nexus user id and only ever searched with it. Mem0's
history and recent messages live in Postgres too (nexus/memory/history.py): no host keeps state of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.media import EMBEDDING_DIMS
from nexus.core.db import sync_url
from nexus.core.settings import Settings
from nexus.llm.embeddings import Embedder
from nexus.llm.models import embedding_model_path
from nexus.memory.history import PostgresHistory

COLLECTION = "nexus_memories"


@dataclass
class MemoryItem:
    id: str
    text: str
    created_at: str | None
    score: float | None = None


class _SharedEmbedding:
    """Mem0's embedder interface over Nexus's own model: one model in memory, and a question embedded once per
    turn (memory search and retrieval hit the same query cache)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed(self, text: str, memory_action: str | None = None) -> list[float]:
        return self.embedder.embed_query(text)

    def embed_batch(self, texts: list[str], memory_action: str = "add") -> list[list[float]]:
        return [v.tolist() for v in self.embedder.embed(list(texts))]


class MemoryStore:
    def __init__(self, settings: Settings, database_url: str, embedder: Embedder) -> None:
        self.settings = settings
        self.database_url = database_url
        self.embedder = embedder
        self._memories: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    @property
    def infer(self) -> bool:
        s = self.settings
        return s.memory_infer if s.memory_infer is not None else bool(s.gemini_api_key or s.openai_base_url)

    def _llm_signature(self) -> tuple[Any, ...]:
        s = self.settings
        return (s.openai_base_url, s.openai_model, s.openai_api_key, s.gemini_api_key, s.gemini_model)

    def _config(self) -> dict[str, Any]:
        s = self.settings
        if s.openai_base_url:
            key = s.openai_api_key.get_secret_value() if s.openai_api_key else "unused"
            llm = {"provider": "openai", "config": {"api_key": key, "openai_base_url": s.openai_base_url,
                                                    "model": s.openai_model or "default"}}  # fmt: skip
        elif s.gemini_api_key:
            llm = {
                "provider": "gemini",
                "config": {"api_key": s.gemini_api_key.get_secret_value(), "model": s.gemini_model},
            }
        else:  # never called with infer=False, but Mem0 insists on an LLM config
            llm = {"provider": "openai", "config": {"api_key": "unused", "model": "unused"}}
        return {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "connection_string": sync_url(self.database_url),
                    "collection_name": COLLECTION,
                    "embedding_model_dims": EMBEDDING_DIMS,
                    "hnsw": True,
                },
            },
            "embedder": {
                "provider": "huggingface",
                "config": {"model": str(embedding_model_path(s)), "embedding_dims": EMBEDDING_DIMS},
            },
            "llm": llm,
            # Replaced by PostgresHistory as soon as Mem0 is built: no history file on any host.
            "history_db_path": ":memory:",
        }

    def _get(self) -> Any:
        """One Mem0 instance per LLM configuration (settings are fixed in production; tests change them)."""
        key = self._llm_signature()
        with self._lock:
            if key not in self._memories:
                os.environ["MEM0_TELEMETRY"] = "False"
                os.environ.setdefault("MEM0_DIR", str(self.settings.data_dir / "mem0"))
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                (self.settings.data_dir / "mem0").mkdir(parents=True, exist_ok=True)
                from mem0 import Memory

                memory = Memory.from_config(self._config())
                memory.db.close()
                memory.db = PostgresHistory(sync_url(self.database_url))
                memory.embedding_model = _SharedEmbedding(self.embedder)
                client = getattr(memory.llm, "client", None)
                if client is not None and hasattr(client, "with_options"):
                    # A silent LLM endpoint would otherwise hang fact extraction forever.
                    memory.llm.client = client.with_options(timeout=self.settings.llm_timeout_s, max_retries=0)
                self._memories[key] = memory
            return self._memories[key]

    @staticmethod
    def _item(raw: dict[str, Any]) -> MemoryItem:
        return MemoryItem(id=raw["id"], text=raw["memory"], created_at=raw.get("created_at"), score=raw.get("score"))

    async def search(self, user_id: uuid.UUID, query: str, limit: int = 5) -> list[MemoryItem]:
        def run() -> list[MemoryItem]:
            found = self._get().search(query, filters={"user_id": str(user_id)}, top_k=limit, threshold=0.3)
            return [self._item(r) for r in found.get("results", [])]

        return await asyncio.to_thread(run)

    async def add(self, user_id: uuid.UUID, text: str, metadata: dict[str, str]) -> int:
        def run() -> int:
            result = self._get().add(
                [{"role": "user", "content": text}], user_id=str(user_id), metadata=metadata, infer=self.infer
            )
            return len(result.get("results", []))

        return await asyncio.to_thread(run)

    async def list(self, user_id: uuid.UUID, limit: int = 100) -> list[MemoryItem]:
        def run() -> list[MemoryItem]:
            found = self._get().get_all(filters={"user_id": str(user_id)}, top_k=limit)
            return [self._item(r) for r in found.get("results", [])]

        return await asyncio.to_thread(run)

    async def delete(self, user_id: uuid.UUID, memory_id: str) -> bool:
        """False when the memory does not exist or is someone else's (callers answer 404 either way)."""

        def run() -> bool:
            memory = self._get()
            try:
                found = memory.get(memory_id)
            except Exception:
                return False
            if not found or found.get("user_id") != str(user_id):
                return False
            memory.delete(memory_id)
            return True

        return await asyncio.to_thread(run)


async def memory_count(engine: AsyncEngine) -> int:
    """Memories stored (Mem0's collection table; absent until the first memory)."""
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT to_regclass(:t)"), {"t": COLLECTION})).scalar_one() is None:
            return 0
        return int((await conn.execute(text(f"SELECT count(*) FROM {COLLECTION}"))).scalar_one())
