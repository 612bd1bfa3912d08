"""Long-term memory with Mem0, embedded: vectors in our Postgres (pgvector), our local MiniLM, telemetry off.

With a generative model configured Mem0 extracts facts (infer=True, bounded timeout); offline it stores what the
user said verbatim (infer=False). Memories are keyed by the Nexus user id and only ever searched with it. Mem0's
history and recent messages live in Postgres too (nexus/memory/history.py): no host keeps state of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nexus.core.db import sync_url
from nexus.core.settings import Settings
from nexus.llm.embeddings import Embedder
from nexus.llm.registry import LEGACY_ID, memory_collection
from nexus.memory.history import PostgresHistory, connect


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


@dataclass(frozen=True)
class IndexModel:
    """The registry row Mem0 is configured for: its collection, dimension and the spec that loads it."""

    id: int
    dims: int
    spec: str


UNUSED_URL = "http://127.0.0.1:9/never-called"
"""Mem0's own embedder client points here (port 9 is discard): it is replaced before any use."""

ACTIVE_TTL_S = 2.0
"""How long a process trusts its reading of the active model (a switch reaches memory within this)."""


class MemoryStore:
    def __init__(self, settings: Settings, database_url: str, embedder_for: Callable[[str], Embedder]) -> None:
        self.settings = settings
        self.database_url = database_url
        self.embedder_for = embedder_for
        self._memories: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._active: tuple[float, IndexModel] | None = None

    def active(self) -> IndexModel:
        """The index's active embedding model: memories are stored in and searched from its collection."""
        now = time.monotonic()
        if self._active is None or now - self._active[0] > ACTIVE_TTL_S:
            with connect(sync_url(self.database_url)) as conn:
                row = conn.execute("SELECT id, dims, spec FROM embedding_models WHERE status = 'active'").fetchone()
            assert row is not None, "no active embedding model: run `nexus migrate`"
            self._active = (now, IndexModel(int(row[0]), int(row[1]), str(row[2])))
        return self._active[1]

    @property
    def infer(self) -> bool:
        s = self.settings
        return s.memory_infer if s.memory_infer is not None else bool(s.gemini_api_key or s.openai_base_url)

    def _llm_signature(self) -> tuple[Any, ...]:
        s = self.settings
        return (s.openai_base_url, s.openai_model, s.openai_api_key, s.gemini_api_key, s.gemini_model)

    def _config(self, model: IndexModel) -> dict[str, Any]:
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
                    "collection_name": memory_collection(model.id),
                    "embedding_model_dims": model.dims,
                    "hnsw": True,
                },
            },
            "embedder": {
                "provider": "huggingface",
                # Mem0 builds its embedder from this, and _get replaces it with ours at once. With a base URL it is
                # an HTTP client that is never called; without one Mem0 loaded a second copy of the model for
                # every Memory it built (~1 s and ~90 MB each: a cold process's first chat turn took 2 s).
                "config": {"model": "unused", "embedding_dims": model.dims, "huggingface_base_url": UNUSED_URL},
            },
            "llm": llm,
            # Replaced by PostgresHistory as soon as Mem0 is built: no history file on any host.
            "history_db_path": ":memory:",
        }

    def warm_up(self) -> None:
        """Build the active model's Mem0 now (imports, collection): blocking."""
        self._get()

    def _get(self, model: IndexModel | None = None) -> Any:
        """One Mem0 instance per LLM configuration (settings are fixed in production; tests change them) and
        embedding model (the active one unless `model`; its collection is created on first use)."""
        model = model or self.active()
        key = (*self._llm_signature(), model.id)
        with self._lock:
            if key not in self._memories:
                os.environ["MEM0_TELEMETRY"] = "False"
                os.environ.setdefault("MEM0_DIR", str(self.settings.data_dir / "mem0"))
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                (self.settings.data_dir / "mem0").mkdir(parents=True, exist_ok=True)
                from mem0 import Memory

                memory = Memory.from_config(self._config(model))
                memory.db.close()
                memory.db = PostgresHistory(sync_url(self.database_url))
                memory.embedding_model = _SharedEmbedding(self.embedder_for(model.spec))
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
        """Idempotent per `metadata["turn_id"]`: a retried activity (its worker lost after Mem0 stored the
        memory, or its time up while Mem0's thread ran on) finds what its turn already added and adds nothing.
        Mem0 gives every add fresh ids, so a retry would duplicate the memory, and with inference pay for its
        two LLM calls again."""

        def run() -> int:
            memory = self._get()
            if turn := metadata.get("turn_id"):
                done = memory.get_all(filters={"user_id": str(user_id), "turn_id": turn}, top_k=100)
                if done.get("results"):
                    return len(done["results"])
            result = memory.add(
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
            self._forget_copies(memory_id)
            return True

        return await asyncio.to_thread(run)

    def _forget_copies(self, memory_id: str) -> None:
        """A deleted memory goes from every model's collection (one being built, one retired but kept), so no
        re-embedding or switch back brings it back."""
        with connect(sync_url(self.database_url)) as conn:
            for (model_id,) in conn.execute("SELECT id FROM embedding_models WHERE dropped_at IS NULL").fetchall():
                table = memory_collection(int(model_id))
                if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                    conn.execute(f'DELETE FROM "{table}" WHERE id = %s', (memory_id,))


async def memory_count(engine: AsyncEngine, model_id: int = LEGACY_ID) -> int:
    """Memories stored with a model's vectors (Mem0's collection table; absent until the first memory)."""
    table = memory_collection(model_id)
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT to_regclass(:t)"), {"t": table})).scalar_one() is None:
            return 0
        return int((await conn.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one())


def copy_memories(
    store: MemoryStore, source_id: int, target: IndexModel, *, only_missing: bool = False, batch: int = 256
) -> int:
    """Memories in `source_id`'s collection that `target`'s lacks or holds with other text (Mem0 updated it), copied
    with `target`'s vectors (same ids and payloads). Blocking. Idempotent: a retry or a later sweep copies only what
    still differs. `only_missing`: copy what the target lacks, never overwrite (from a retired model's collection
    into the active one: only memories a process wrote there in the moment of the switch). (Deletions reach every
    collection at once: MemoryStore.delete.)"""
    store._get(target).vector_store._ensure_collection()  # Mem0's own schema and HNSW index for the target
    source, dest = memory_collection(source_id), memory_collection(target.id)
    embedder = store.embedder_for(target.spec)
    copied = 0
    with connect(sync_url(store.database_url)) as conn:
        if conn.execute("SELECT to_regclass(%s)", (source,)).fetchone() == (None,):
            return 0
        while True:
            rows = conn.execute(
                f'SELECT s.id, s.payload FROM "{source}" s WHERE NOT EXISTS (SELECT 1 FROM "{dest}" d '
                "WHERE d.id = s.id AND (%s OR d.payload->>'data' IS NOT DISTINCT FROM s.payload->>'data')) "
                "ORDER BY s.id LIMIT %s",
                (only_missing, batch),
            ).fetchall()
            if not rows:
                return copied
            vectors = embedder.embed([str((payload or {}).get("data", "")) for _, payload in rows])
            with conn.transaction():
                for (memory_id, payload), vector in zip(rows, vectors, strict=True):
                    conn.execute(
                        f'INSERT INTO "{dest}" (id, vector, payload) VALUES (%s, %s::vector, %s) '
                        "ON CONFLICT (id) DO UPDATE SET vector = EXCLUDED.vector, payload = EXCLUDED.payload",
                        (memory_id, str(list(map(float, vector))), Jsonb(payload)),
                    )
            copied += len(rows)
