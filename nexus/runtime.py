"""The long-lived resources a process needs (API or worker), built once from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client

from nexus.core import crypto
from nexus.core.db import make_engine, resolve_database_url, session_scope
from nexus.core.orchestration import TaskQueues
from nexus.core.settings import Settings
from nexus.core.temporal import connect
from nexus.llm import registry
from nexus.llm.embeddings import Embedder
from nexus.memory.service import MemoryStore
from nexus.storage.service import ObjectStore, make_store

log = logging.getLogger("nexus")

RECONNECT_AFTER_S = 3.0


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    store: ObjectStore
    queues: TaskQueues
    database_url: str
    _client: Client | None = None
    _connecting: asyncio.Task[Client] | None = None
    _failed_at: float = 0.0
    _embedders: dict[str, Embedder] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, client: Client | None = None) -> Runtime:
        settings.require_shared()  # before any fallback starts a component only this host can see
        url = resolve_database_url(settings)
        crypto.configure(settings)
        return cls(
            settings=settings,
            engine=make_engine(
                url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout_s=settings.db_pool_timeout_s,
            ),
            store=make_store(settings),
            queues=TaskQueues.from_prefix(settings.task_queue_prefix),
            database_url=url,
            _client=client,
        )

    @cached_property
    def embedder(self) -> Embedder:
        """Loads the model on first use; the API needs it for queries, cpu/llm workers for chunks and tags."""
        return Embedder(self.settings.embedding_model)

    def embedder_for(self, spec: str) -> Embedder:
        """The embedder of a registered model (queries use the active model's, writers every target's), one per
        spec per process; the configured model's is `embedder`."""
        if spec == self.settings.embedding_model:
            return self.embedder
        if spec not in self._embedders:
            self._embedders[spec] = Embedder(spec)
        return self._embedders[spec]

    async def index_vectors(
        self, texts: list[str], session: AsyncSession | None = None, *, reusing: uuid.UUID | None = None
    ) -> registry.Vectors:
        """`texts` embedded with every model the index is writing (active, and any being built). Without the
        caller's `session` the models are read in a short one of their own, so no pooled connection sits idle in
        a transaction for the seconds of CPU an hour of passages takes to embed. `reusing`: an item whose current
        passages' vectors serve the same texts again (a correction re-chunks the item; most passages are
        unchanged)."""
        scope = session_scope(self.engine) if session is None else contextlib.nullcontext(session)
        async with scope as reading:
            models = await registry.targets(reading)
            known = await registry.item_vectors(reading, models, reusing) if reusing else None
        return await registry.embed_for_index(models, lambda m: self.embedder_for(m.spec), texts, known)

    @cached_property
    def memory(self) -> MemoryStore:
        return MemoryStore(self.settings, self.database_url, self.embedder_for)

    async def temporal(self) -> Client:
        """Connect on first use so the API can start (and report not-ready) while Temporal is down.

        Concurrent callers share one connection attempt, and for a few seconds after a failed attempt they fail at
        once: during an outage a burst of requests answers 503 together instead of queueing behind each other's
        timeouts."""
        if self._client is not None:
            return self._client
        if self._connecting is None:
            if time.monotonic() - self._failed_at < RECONNECT_AFTER_S:
                raise ConnectionError("Temporal was unreachable moments ago")
            self._connecting = asyncio.ensure_future(connect(self.settings))
        attempt = self._connecting
        try:
            self._client = await asyncio.shield(attempt)
        except Exception:
            if attempt.done():
                self._failed_at = time.monotonic()
            raise
        finally:
            if attempt.done() and self._connecting is attempt:
                self._connecting = None
        return self._client

    async def warm_up(self, *, memory: bool = False) -> None:
        """Load the active embedding model (and Mem0, for `memory`) at start, off any request's path: a cold
        process's first search or chat turn otherwise waits seconds for them. A failure only means the first
        request loads them."""
        try:
            async with session_scope(self.engine) as session:
                active = await registry.active_model(session)
            await asyncio.to_thread(self.embedder_for(active.spec).embed, ["warm up"])
            if memory:
                await asyncio.to_thread(self.memory.warm_up)
        except Exception as exc:  # anything: the process serves regardless
            log.warning("warm-up failed, the first request will load the models: %s", exc)

    async def close(self) -> None:
        from nexus.core.eventlog import close_listeners

        await close_listeners()
        await self.engine.dispose()
