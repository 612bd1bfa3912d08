"""The semantic leg's two paths on real pgvector: an exact scan of what a small reader may read, and the shared
HNSW index for large ones. Both return the same nearest passages, and both only what the reader may read."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import delete
from sqlmodel import col

from models import MediaItem, SourceType
from models.media import EMBEDDING_DIMS
from nexus.core.db import session_scope
from nexus.llm import registry
from nexus.media.chunking import Passage
from nexus.media.repository import add_chunks
from nexus.runtime import Runtime
from nexus.search import service
from nexus.search.service import SearchMode, search
from tests.conftest import MakeAccount


def unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(EMBEDDING_DIMS)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


async def test_exact_and_index_paths_agree_and_stay_scoped(
    runtime: Runtime, make_account: MakeAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    me, other = await make_account(), await make_account()
    vectors: dict[str, list[float]] = {}
    created = []
    model = await registry.adopt(runtime.engine, runtime.settings.embedding_model)
    async with session_scope(runtime.engine) as session:
        for account in (me, other):
            media = MediaItem(owner_id=account.user.id, source_type=SourceType.file, title="t")
            session.add(media)
            await session.flush()
            created.append(media.id)
            passages = [Passage(start_s=i, end_s=i + 1, text=f"passage {account.user.email} {i}") for i in range(60)]
            own = [unit(rng) for _ in passages]
            vectors |= {p.text: v for p, v in zip(passages, own, strict=True)}
            await add_chunks(session, media, passages, {model.id: own})
    mine = [body for body in vectors if me.user.email in body]
    query = vectors[mine[3]]  # a query equal to one of my passages: it must rank first on both paths

    async def top(exact_max: int) -> list[str]:
        monkeypatch.setattr(service, "EXACT_SCAN_MAX", exact_max)
        async with session_scope(runtime.engine) as session:
            hits = await search(
                session, runtime.embedder_for, me.user.id, "q", limit=10, mode=SearchMode.semantic, vector=query
            )
        return [h.text for h in hits]

    try:
        exact, indexed = await top(50_000), await top(0)
    finally:  # random vectors are no model's: they must not stay in the session's index (a re-embedding verifies)
        async with session_scope(runtime.engine) as session:
            await session.execute(delete(MediaItem).where(col(MediaItem.id).in_(created)))
    assert exact[0] == mine[3] and indexed[0] == mine[3]
    assert all(me.user.email in t for t in exact + indexed)  # never another user's passage
    assert len(exact) == 10 and set(indexed) <= set(mine)
    assert len(set(exact) & set(indexed)) >= 8  # the index is approximate; on 60 rows it is near exact
