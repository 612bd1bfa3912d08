"""A transcript correction re-indexes the item in the request's transaction: only the passages whose text changed
are embedded again; the others keep the vectors they had (an hour-long item has ~600 passages)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import MediaItem, MediaStatus, SourceType, TranscriptSegment
from nexus.core.db import session_scope
from nexus.llm import registry
from nexus.llm.embeddings import Embedder
from nexus.media import corrections, repository
from nexus.media.chunking import passages_of
from nexus.runtime import Runtime
from nexus.search.service import SearchMode, search
from tests.conftest import MakeAccount

WORDS = "ships sailed past the lighthouse while the keeper counted them in his log".split()


async def test_a_correction_embeds_only_the_passages_it_changed(
    runtime: Runtime, make_account: MakeAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = (await make_account()).user.id
    lines = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(12)) + f" line{i}" for i in range(40)]
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner, source_type=SourceType.file, status=MediaStatus.completed, title="log")
        session.add(media)
        await session.flush()
        for i, line in enumerate(lines):  # 10-second lines: a passage holds at most 3 of them (30 s)
            session.add(
                TranscriptSegment(
                    media_id=media.id, owner_id=owner, idx=i, start_s=i * 10.0, end_s=i * 10.0 + 10, text=line
                )
            )
    passages = passages_of([(i * 10.0, i * 10.0 + 10, line, None) for i, line in enumerate(lines)])
    vectors = await runtime.index_vectors([p.text for p in passages])
    await repository.store_chunks(runtime.engine, media, passages, vectors)
    assert len(passages) >= 10

    embedded: list[str] = []
    real = Embedder.embed

    def counting(self: Embedder, texts: list[str]):  # type: ignore[no-untyped-def]
        embedded.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(Embedder, "embed", counting)
    async with session_scope(runtime.engine) as session:
        found = await session.get(MediaItem, media.id)
        assert found is not None
        await corrections.correct_segment(runtime, session, found, 7, "the keeper saw a schooner from Zanzibar")
    assert 1 <= len(embedded) <= 2 and all("Zanzibar" in t for t in embedded), embedded  # not all the passages

    async with session_scope(runtime.engine) as session:
        hits = await search(session, runtime.embedder_for, owner, "schooner Zanzibar", mode=SearchMode.hybrid)
        model = (await registry.targets(session))[0]
        table = registry.vector_table(model.id or 0, model.dims)
        stored = (await session.execute(select(table.c.chunk_id).where(table.c.media_id == media.id))).all()
    assert hits and hits[0].media_id == media.id and "Zanzibar" in hits[0].text
    assert len(stored) == len(passages)  # every passage has its vector, reused or new
