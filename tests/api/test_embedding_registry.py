"""The registry of embedding models and a blue/green switch between two real models of different dimension
(MiniLM 384-d, tokenlearn's static 64-d), on a database of its own so the session's index is untouched:

declare a new model (building, its own vector table) -> writers store both models' vectors -> queries keep using the
active model -> the switch refuses while passages lack a vector -> verification catches wrong vectors -> finish
(catch up, copy memories, verify, switch) -> queries use the new model -> switching back only catches up -> retired
vectors are dropped after the grace period."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client

from models import MediaItem, MediaStatus, SourceType
from nexus.core.db import make_engine, session_scope
from nexus.core.errors import BadInput
from nexus.identity.service import create_user
from nexus.llm import registry
from nexus.llm.embeddings import Embedder
from nexus.llm.models import STATIC_64, identity_of
from nexus.media import repository
from nexus.media.chunking import Passage
from nexus.memory.service import IndexModel, MemoryStore, memory_count
from nexus.ops import reembed
from nexus.ops.migrate import upgrade_async
from nexus.runtime import Runtime
from nexus.search.service import SearchMode, search
from tests.conftest import MakeAccount

ARCHIVE = [
    "Volcanoes form where tectonic plates pull apart or collide, and magma rises through the crust.",
    "The orchestra tuned their violins while the conductor studied the score of the symphony.",
    "Astronomers measured the light of distant galaxies to estimate how fast the universe expands.",
    "The bakery sells sourdough bread and cinnamon rolls every morning before eight.",
    "Glaciers carve valleys as they slowly slide downhill under their own weight.",
]


@pytest.fixture
async def own_runtime(runtime: Runtime, database_url: str) -> AsyncIterator[Runtime]:
    name = f"reg_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url.replace("/postgres?", f"/{name}?")
    await upgrade_async(url)
    rt = Runtime(
        settings=runtime.settings, engine=make_engine(url), store=runtime.store, queues=runtime.queues, database_url=url
    )
    try:
        yield rt
    finally:
        await rt.engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _ingest(rt: Runtime, owner: uuid.UUID, texts: list[str]) -> MediaItem:
    """What the pipeline's embed step stores: passages with a vector of every model the index is writing."""
    async with session_scope(rt.engine) as session:
        media = MediaItem(owner_id=owner, source_type=SourceType.file, title="archive", status=MediaStatus.completed)
        session.add(media)
    passages = [Passage(start_s=i * 10, end_s=i * 10 + 9, text=t) for i, t in enumerate(texts)]
    vectors = await rt.index_vectors([p.text for p in passages])
    await repository.store_chunks(rt.engine, media, passages, vectors)
    return media


async def _top(rt: Runtime, owner: uuid.UUID, query: str) -> tuple[str, list[str]]:
    """The best semantic hit and the model specs the query was embedded with."""
    asked: list[str] = []

    def embedder_for(spec: str) -> Embedder:
        asked.append(spec)
        return rt.embedder_for(spec)

    async with session_scope(rt.engine) as session:
        hits = await search(session, embedder_for, owner, query, limit=3, mode=SearchMode.semantic)
    return hits[0].text, asked


async def _count(rt: Runtime, table: str) -> int:
    async with rt.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_switching_between_two_real_models_of_different_dimension(
    own_runtime: Runtime, temporal_client: Client
) -> None:
    rt = own_runtime
    async with session_scope(rt.engine) as session:
        owner = (await create_user(session, "switch@example.test")).id
    old = await registry.adopt(rt.engine, "")
    assert (old.id, old.dims, old.digest) == (registry.LEGACY_ID, 384, identity_of("").digest)
    await _ingest(rt, owner, ARCHIVE[:3])
    await rt.memory.add(owner, "My sister Ingrid lives in Trondheim.", {"source": "test"})

    # A new model: building, with a vector table of its own dimension; nothing switches yet.
    new, needs_backfill = await registry.declare(rt.engine, STATIC_64)
    assert needs_backfill and (new.status, new.dims, new.name) == ("building", 64, "tokenlearn-static-64")
    new_table = registry.vector_table_name(new.id or 0)
    assert await _count(rt, new_table) == 0
    async with session_scope(rt.engine) as session:  # its HNSW index is built after the load, by finish
        assert not await registry.hnsw_ready(session, new.id or 0)
    assert await registry.declare(rt.engine, STATIC_64) == (new, True)  # idempotent

    # New passages during the backfill get both models' vectors; queries still use the active (old) model.
    await _ingest(rt, owner, ARCHIVE[3:])
    assert await _count(rt, new_table) == 2 and await _count(rt, "chunk_vectors_1") == 5
    best, asked = await _top(rt, owner, "bread and pastries from the baker")
    assert best == ARCHIVE[3] and asked == [""]

    # The switch refuses while passages lack the new model's vector, and changes nothing.
    refused = await registry.switch(rt.engine, new.id or 0, timedelta(hours=1))
    assert not refused.switched and refused.missing == 3

    # Backfill; then a wrong vector (as if another model had written it) is caught by verification.
    assert (await reembed.embed_batch(rt, new.id or 0, None, 2)).embedded == 2
    assert await reembed.catch_up(rt, new.id or 0) == 1
    first, last = (
        f"(SELECT min(chunk_id::text)::uuid FROM {new_table})",
        f"(SELECT max(chunk_id::text) FROM {new_table})",
    )
    async with session_scope(rt.engine) as session:  # one passage gets another's vector
        other = f"(SELECT embedding FROM {new_table} WHERE chunk_id = {last}::uuid)"
        await session.execute(text(f"UPDATE {new_table} SET embedding = {other} WHERE chunk_id = {first}"))
    with pytest.raises(BadInput, match="verification failed"):
        await reembed.verify(rt, new, sample=10)
    async with session_scope(rt.engine) as session:  # remove it: the catch-up embeds it again
        await session.execute(text(f"DELETE FROM {new_table} WHERE chunk_id = {first}"))

    finished = await reembed.finish(rt, new.id or 0)
    assert finished.switched and finished.caught_up == 1 and finished.verified == 5 and finished.memories == 1
    async with session_scope(rt.engine) as session:
        assert await registry.hnsw_ready(session, new.id or 0)
    assert finished.active.startswith("tokenlearn-static-64@") and (finished.retired or "").startswith(
        "all-MiniLM-L6-v2@"
    )
    best, asked = await _top(rt, owner, "sourdough bread and cinnamon rolls")
    assert best == ARCHIVE[3] and asked == [STATIC_64]
    assert await memory_count(rt.engine, new.id or 0) == 1
    rt.memory._active = None  # the process's reading of the active model expires within seconds; now
    assert [m.text for m in await rt.memory.list(owner)] == ["My sister Ingrid lives in Trondheim."]

    # The daily sweep fills a gap in the active model's vectors and copies a memory a process still wrote to the
    # retired model's collection in the instant of the switch; it drops nothing before the grace period ends.
    async with session_scope(rt.engine) as session:
        await session.execute(
            text(f"DELETE FROM {new_table} WHERE chunk_id = (SELECT min(chunk_id::text)::uuid FROM {new_table})")
        )
    stray = MemoryStore(rt.settings, rt.database_url, rt.embedder_for)
    stray._active = (float("inf"), IndexModel(registry.LEGACY_ID, 384, ""))  # a process that missed the switch
    await stray.add(owner, "I keep three beehives.", {"source": "test"})
    swept = await reembed.sweep(rt, temporal_client)
    assert (swept.active_backfilled, swept.memories_copied, swept.started, swept.dropped) == (1, 1, [], [])
    assert sorted(m.text for m in await rt.memory.list(owner)) == [
        "I keep three beehives.", "My sister Ingrid lives in Trondheim."
    ]  # fmt: skip

    # Switching back within the grace period: the old vectors are still there, only the gap is embedded.
    await _ingest(rt, owner, ["Tides rise and fall twice a day because of the moon's gravity."])
    back, needs = await registry.declare(rt.engine, "")
    assert back.id == registry.LEGACY_ID and needs and back.status == "building"
    done = await reembed.finish(rt, back.id or 0)
    assert done.switched and done.caught_up == 1

    # Past the grace period the retired model's vectors and memories are dropped.
    later = datetime.now(UTC) + timedelta(hours=own_runtime.settings.embedding_grace_hours + 1)
    assert await registry.drop_expired(rt.engine, later) == [new.id]
    async with rt.engine.connect() as conn:
        assert (await conn.execute(text("SELECT to_regclass(:t)"), {"t": new_table})).scalar_one() is None
    states = {s.id: s for s in await registry.states(rt.engine)}
    assert states[new.id or 0].dropped_at is not None and states[registry.LEGACY_ID].status == "active"
    assert states[registry.LEGACY_ID].vectors == 6 and states[registry.LEGACY_ID].missing == 0


async def test_the_model_declared_last_wins_an_abandoned_backfill_never_switches_in(own_runtime: Runtime) -> None:
    """A -> B (a backfill starts) -> A again: B's backfill went on, and its finish switched B in over A."""
    rt = own_runtime
    active, needs = await registry.declare(rt.engine, rt.settings.embedding_model)
    assert active.status == registry.ACTIVE and not needs
    other, needs = await registry.declare(rt.engine, STATIC_64)
    assert other.status == registry.BUILDING and needs
    again, needs = await registry.declare(rt.engine, rt.settings.embedding_model)  # changed one's mind
    assert again.id == active.id and not needs
    abandoned = await registry.get(rt.engine, other.id or 0)
    assert abandoned is not None and abandoned.status == registry.RETIRED
    assert (await reembed.embed_batch(rt, other.id or 0, None, 16)).finished  # its backfill stands down
    assert not (await reembed.finish(rt, other.id or 0)).switched
    outcome = await registry.switch(rt.engine, other.id or 0, timedelta(hours=1))
    assert not outcome.switched
    async with session_scope(rt.engine) as session:
        assert (await registry.active_model(session)).id == active.id
    assert await registry.drop_expired(rt.engine) == [other.id]  # its partial vectors go at the next sweep
    back, needs = await registry.declare(rt.engine, STATIC_64)  # and B wanted again later: a fresh build
    assert back.id != other.id and back.status == registry.BUILDING and needs


async def test_a_retried_index_build_waits_for_the_one_still_running(
    own_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt whose worker died (or whose time ran out) leaves its `CREATE INDEX CONCURRENTLY` running in
    Postgres; the retry dropped it and started over, so a build longer than the attempt never finished."""
    rt = own_runtime
    model, _ = await registry.declare(rt.engine, STATIC_64)
    monkeypatch.setattr(registry, "BUILD_POLL_S", 0.1)
    table = registry.vector_table_name(model.id or 0)
    async with rt.engine.connect() as writer:  # a writer mid-transaction holds the first build back
        await writer.execute(text(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
        first = asyncio.create_task(registry.build_index(rt.engine, model))
        async with asyncio.timeout(30):
            while True:
                async with session_scope(rt.engine) as session:
                    running = await session.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_progress_create_index p "
                            "JOIN pg_class c ON c.oid = p.relid WHERE c.relname = :t"
                        ),
                        {"t": table},
                    )
                    if running.scalar_one():
                        break
                await asyncio.sleep(0.05)
        retry = asyncio.create_task(registry.build_index(rt.engine, model))
        await asyncio.sleep(0.5)
        assert not retry.done() and not first.done()
        await writer.rollback()
    assert await asyncio.wait_for(first, 30) is True  # the first build finished: nobody dropped it
    assert await asyncio.wait_for(retry, 30) is False  # the retry found it built
    async with session_scope(rt.engine) as session:
        assert await registry.hnsw_ready(session, model.id or 0)


async def test_a_host_with_other_files_for_a_model_refuses(own_runtime: Runtime) -> None:
    active = await registry.adopt(own_runtime.engine, "")
    forged = active.model_copy(update={"digest": "0" * 64})
    with pytest.raises(registry.ModelUnavailable, match="digest"):
        registry.check_loadable(forged)


async def test_operators_see_the_models(api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount) -> None:
    admin, user = await make_account(admin=True), await make_account()
    assert (await api.get("/api/admin/embeddings", headers=user.headers)).status_code == 403
    body = (await api.get("/api/admin/embeddings", headers=admin.headers)).json()
    (model,) = body["models"]
    assert model["status"] == "active" and model["digest"] == identity_of("").digest and model["missing"] == 0
    assert body["active"] == body["configured"] == str(identity_of(""))
