"""The semantic leg's two paths on real pgvector: an exact scan of what a small reader may read, and the shared
HNSW index for large ones. Both return the same nearest passages, and both only what the reader may read."""

from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import delete
from sqlmodel import col

from models import MediaItem, SourceType, TranscriptSegment
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
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)  # nearest first (the index's relaxed order is re-sorted)
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


async def test_a_hit_names_the_speaker_of_its_own_passage_not_the_one_before(
    runtime: Runtime, make_account: MakeAccount
) -> None:
    """Segments abut (one ends at the second the next starts): a hit with no matching word (semantic only, a
    corrected line) took the speaker of the previous passage's last segment."""
    owner = (await make_account()).user.id
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner, source_type=SourceType.file, speaker_names={"S2": "Grace"})
        session.add(media)
        await session.flush()
        for idx, (start, end, speaker, words) in enumerate(
            [(0.0, 5.0, "S1", "the harbour at dawn"), (5.0, 9.0, "S2", "a trip to Zanzibar"), (9.0, 12.0, "S2", "")]
        ):
            session.add(
                TranscriptSegment(
                    media_id=media.id, owner_id=owner, idx=idx, start_s=start, end_s=end, speaker=speaker, text=words
                )
            )
    hits = [
        service.Hit(chunk_id=uuid.uuid4(), media_id=media.id, title=None, start_s=5.0, end_s=12.0, text="Zanzibar"),
        service.Hit(chunk_id=uuid.uuid4(), media_id=media.id, title=None, start_s=0.0, end_s=5.0, text="harbour"),
    ]
    async with session_scope(runtime.engine) as session:
        await service.locate(session, hits, "an island holiday")  # no word matches: the passage's first segment
    assert [(h.speaker, h.at_s) for h in hits] == [("Grace", 5.0), ("S1", 0.0)]
