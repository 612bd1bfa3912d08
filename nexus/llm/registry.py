"""The registry of embedding models: which model the search index's vectors come from.

Vectors from two models are not comparable, and a model of another dimension does not even fit the column. So the
model a process is configured with (`NEXUS_EMBEDDING_MODEL`) is checked against the index's *active* model before
it writes a vector or answers a query, by identity: name, a digest of its files and its dimension
(`nexus.llm.models.embedding_identity`). A process configured with another model does not write (the embed step
fails, retryably, naming both models, so nothing is lost and the run resumes once the setting is fixed), and
readiness reports it. Re-embedding the archive with a new model (a `building` model backfilled, then switched to
`active`) builds on this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from models.media import MediaChunk
from models.ops import EmbeddingModel
from nexus.core.db import session_scope
from nexus.llm.models import ModelIdentity


class ModelMismatch(RuntimeError):
    """This process embeds with another model than the index's active one. Retryable on purpose: the activity
    waits (visibly, in its retries) for the configuration to be fixed rather than fail the item."""


@dataclass(frozen=True)
class ModelState:
    id: int
    name: str
    digest: str | None
    dims: int
    status: str
    chunks: int
    created_at: datetime
    activated_at: datetime | None

    @property
    def label(self) -> str:
        return f"{self.name}@{(self.digest or 'unknown')[:12]}/{self.dims}d"


def matches(row: EmbeddingModel, identity: ModelIdentity) -> bool:
    return row.digest == identity.digest and row.dims == identity.dims


async def adopt(engine: AsyncEngine, identity: ModelIdentity) -> EmbeddingModel:
    """The active model, after giving it this process's digest if it has none yet and is the same model by name
    and dimension (the row the registry's migration made for the index built before it)."""
    async with session_scope(engine) as session:
        query = select(EmbeddingModel).where(col(EmbeddingModel.status) == "active")
        active = (await session.execute(query)).scalar_one()
        if active.digest is None and active.name == identity.name and active.dims == identity.dims:
            # Conditional: of two processes adopting at once, one writes and both read the same digest after.
            await session.execute(
                update(EmbeddingModel)
                .where(col(EmbeddingModel.id) == active.id, col(EmbeddingModel.digest).is_(None))
                .values(digest=identity.digest)
            )
            await session.refresh(active)
        return active


async def require_active(engine: AsyncEngine, identity: ModelIdentity) -> EmbeddingModel:
    """The active model if it is the one this process runs; else ModelMismatch naming both."""
    active = await adopt(engine, identity)
    if not matches(active, identity):
        raise ModelMismatch(
            f"this process embeds with {identity}, but the search index holds vectors of "
            f"{active.name}@{(active.digest or 'unknown')[:12]}/{active.dims}d: set NEXUS_EMBEDDING_MODEL to that "
            "model on every host (re-embedding the archive with another model is not available yet)"
        )
    return active


async def states(engine: AsyncEngine) -> list[ModelState]:
    """Every registered model with the passages that have its vectors (all of them belong to the active one)."""
    async with session_scope(engine) as session:
        rows = list((await session.execute(select(EmbeddingModel).order_by(col(EmbeddingModel.id)))).scalars())
        chunks = (await session.execute(select(func.count()).select_from(MediaChunk))).scalar_one()
    return [
        ModelState(
            id=r.id or 0,
            name=r.name,
            digest=r.digest,
            dims=r.dims,
            status=r.status,
            chunks=chunks if r.status == "active" else 0,
            created_at=r.created_at,
            activated_at=r.activated_at,
        )
        for r in rows
    ]
