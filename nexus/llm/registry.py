"""The registry of embedding models: which models the search index has vectors of, and which one answers queries.

Vectors of two models are not comparable, and a pgvector index needs one fixed dimension. So each model has its own
vector table (`chunk_vectors_<id>`, an HNSW index each) and a row here: name, digest of its files, dimension, the
spec that loads it, and a status:

- `active`: exactly one. Queries are embedded with it and ranked in its table; Mem0 searches its collection.
- `building`: a model being backfilled (`ReembedWorkflow`). Writers embed new passages with it too, so the backfill
  converges; queries never see it until the switch.
- `retired`: the previous active model after a switch. Its vectors stay until `drop_after` (switching back is a
  quick catch-up), then the cleanup drops them.

Every process reads the registry instead of trusting its own settings: queries use the active model's spec, writers
every active/building model's. A host whose copy of a registered model differs (another digest) or lacks it refuses,
retryably (ModelUnavailable), rather than write vectors nothing matches. `NEXUS_EMBEDDING_MODEL` says which model the
deployment wants: the workflows worker declares it at start (`declare`), which registers it as `building` when it is
new and starts the backfill; the switch (`switch`) happens only when every passage has a vector of it, atomically
with respect to writers (they hold the rows FOR SHARE while writing; the switch takes them FOR UPDATE).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from models.media import MediaChunk
from models.ops import EmbeddingModel
from nexus.core.db import lock_for_transaction, session_scope
from nexus.core.errors import Unavailable
from nexus.llm.models import identity_of, model_label

ACTIVE, BUILDING, RETIRED = "active", "building", "retired"
LEGACY_ID = 1
"""The first row: the model the index was built with before the registry (its Mem0 collection keeps its name)."""
HNSW_WITH = "m = 16, ef_construction = 64"


class ModelUnavailable(Unavailable):
    """A registered model this host cannot load as registered (missing files, or files with another digest)."""

    def __init__(self, model: EmbeddingModel, why: str) -> None:
        super().__init__(f"embedding model {label(model)}", why)


class TargetsChanged(RuntimeError):
    """The active model changed between embedding passages and writing them: embed again (retryable)."""


def label(model: EmbeddingModel) -> str:
    return model_label(model.name, model.digest, model.dims)


def vector_table_name(model_id: int) -> str:
    """`chunk_vectors_<id>`: one table per model, each with its own fixed dimension and HNSW index (a shared table
    with per-model partial indexes is ignored by generic plans)."""
    return f"chunk_vectors_{int(model_id)}"


def memory_collection(model_id: int) -> str:
    """Mem0's pgvector collection for a model's memory vectors."""
    return "nexus_memories" if model_id == LEGACY_ID else f"nexus_memories_{int(model_id)}"


@functools.lru_cache(maxsize=16)
def vector_table(model_id: int, dims: int) -> sa.Table:
    return sa.Table(
        vector_table_name(model_id),
        sa.MetaData(),
        sa.Column("chunk_id", sa.Uuid, primary_key=True),
        sa.Column("media_id", sa.Uuid, nullable=False),
        sa.Column("embedding", Vector(dims), nullable=False),
    )


def vector_table_ddl(model_id: int, dims: int) -> list[str]:
    """A model's vector table, if absent, without its HNSW index: a backfill loads first, then `build_index` (one
    build is far cheaper than inserting each vector into the graph). A chunk's vectors go with it (CASCADE)."""
    name = vector_table_name(model_id)
    return [
        f"""CREATE TABLE IF NOT EXISTS {name} (
                chunk_id uuid PRIMARY KEY REFERENCES media_chunks(id) ON DELETE CASCADE,
                media_id uuid NOT NULL REFERENCES media_items(id) ON DELETE CASCADE,
                embedding vector({int(dims)}) NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS ix_{name}_media_id ON {name} (media_id)",
    ]


def hnsw_index_name(model_id: int) -> str:
    return f"ix_{vector_table_name(model_id)}_hnsw"


async def hnsw_ready(session: AsyncSession, model_id: int) -> bool:
    """The model's HNSW index exists and is valid (a failed concurrent build leaves an invalid one)."""
    query = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
    found = (await session.execute(sa.text(query), {"name": hnsw_index_name(model_id)})).scalar_one_or_none()
    return bool(found)


BUILD_POLL_S = 5.0


async def build_index(engine: AsyncEngine, model: EmbeddingModel) -> bool:
    """The HNSW index of a loaded vector table, built CONCURRENTLY (writers go on during the build); an invalid
    leftover of a killed build is dropped first. False when it was already there."""
    name, table = hnsw_index_name(model.id or 0), vector_table_name(model.id or 0)
    # A build an earlier attempt started may still be running in Postgres (its worker died, or its time ran out:
    # the server goes on building): wait for it rather than drop it and start a long build over.
    while True:
        async with session_scope(engine) as session:
            if await hnsw_ready(session, model.id or 0):
                return False
            building = await session.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.relid "
                    "WHERE c.relname = :table"
                ),
                {"table": table},
            )
            if not building.scalar_one():
                break
        await asyncio.sleep(BUILD_POLL_S)
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
        await auto.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        await auto.execute(
            sa.text(
                f"CREATE INDEX CONCURRENTLY {name} ON {table} "
                f"USING hnsw (embedding vector_cosine_ops) WITH ({HNSW_WITH})"
            )
        )
    return True


def check_loadable(model: EmbeddingModel) -> None:
    """This host's files for the model's spec are the registered model (same digest), else ModelUnavailable."""
    try:
        here = identity_of(model.spec)
    except Exception as exc:
        raise ModelUnavailable(model, f"this host cannot load spec {model.spec!r}: {exc}") from exc
    if model.digest is not None and here.digest != model.digest:
        raise ModelUnavailable(
            model, f"this host's files for {model.spec or 'the shipped model'!r} have digest {here.digest[:12]}"
        )


# --- reading ---


async def active_model(session: AsyncSession) -> EmbeddingModel:
    """The model queries use (read in the caller's transaction, with the vectors it then reads)."""
    return (await session.execute(select(EmbeddingModel).where(col(EmbeddingModel.status) == ACTIVE))).scalar_one()


async def targets(session: AsyncSession, *, lock: bool = False) -> list[EmbeddingModel]:
    """The models new passages get vectors of: the active one first, then any being built. `lock`: FOR SHARE until
    the caller's transaction ends, so a switch waits for this write and this write sees the switch's outcome."""
    query = select(EmbeddingModel).where(col(EmbeddingModel.status).in_((ACTIVE, BUILDING)))
    if lock:
        query = query.with_for_update(read=True)
    rows = list((await session.execute(query)).scalars())
    return sorted(rows, key=lambda m: (m.status != ACTIVE, m.id or 0))


async def get(engine: AsyncEngine, model_id: int) -> EmbeddingModel | None:
    async with session_scope(engine) as session:
        return await session.get(EmbeddingModel, model_id)


# --- writing vectors ---

Vectors = dict[int, Any]  # model id -> one vector per passage, in order (an array or a list of them)


async def embed_for_index(
    models: Sequence[EmbeddingModel],
    embedder_for: Callable[[EmbeddingModel], Any],
    texts: list[str],
    known: dict[int, dict[str, Any]] | None = None,
) -> Vectors:
    """Each model's vectors of `texts` (blocking work in threads; a model this host cannot load raises). Texts in
    `known` (model id -> text -> vector: `item_vectors`) are not embedded again."""
    out: Vectors = {}
    for model in models:
        check_loadable(model)
        have = dict((known or {}).get(model.id or 0, {}))
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if missing:
            have.update(zip(missing, await asyncio.to_thread(embedder_for(model).embed, missing), strict=True))
        out[model.id or 0] = [have[t] for t in texts]
    return out


async def item_vectors(
    session: AsyncSession, models: Sequence[EmbeddingModel], media_id: Any
) -> dict[int, dict[str, Any]]:
    """The vectors an item's current passages have, by model and passage text: a correction changes one or two
    passages of an item, and embedding all of an hour-long item's again took seconds of CPU in the request."""
    known: dict[int, dict[str, Any]] = {}
    for model in models:
        table = vector_table(model.id or 0, model.dims)
        rows = await session.execute(
            select(col(MediaChunk.text), table.c.embedding)
            .join(table, table.c.chunk_id == MediaChunk.id)
            .where(col(MediaChunk.media_id) == media_id)
        )
        known[model.id or 0] = {text: vector for text, vector in rows}
    return known


async def add_vectors(session: AsyncSession, chunks: Sequence[MediaChunk], vectors: Vectors) -> None:
    """The chunks' vectors, in the caller's transaction, for every active/building model (rows held FOR SHARE).
    Vectors of a model no longer a target are dropped; a building model missing from `vectors` is left to the
    backfill; the active one missing means it changed meanwhile: TargetsChanged (embed again)."""
    for model in await targets(session, lock=True):
        batch = vectors.get(model.id or 0)
        if batch is None:
            if model.status == ACTIVE:
                raise TargetsChanged(f"the active embedding model is now {label(model)}")
            continue
        rows = _vector_rows([(c.id, c.media_id) for c in chunks], batch)
        if rows:
            await session.execute(sa.insert(vector_table(model.id or 0, model.dims)), rows)


def _vector_rows(ids: Iterable[tuple[Any, Any]], vectors: Any) -> list[dict[str, Any]]:
    """Rows of a vector table: (chunk id, media id) beside each vector."""
    return [
        {"chunk_id": chunk, "media_id": media, "embedding": list(map(float, v))}
        for (chunk, media), v in zip(ids, vectors, strict=True)
    ]


async def write_retrying(attempt: Callable[[], Awaitable[Any]], tries: int = 3) -> Any:
    """Run a compute-then-write `attempt` again when the active model changed in between (a switch is rare and
    quick: one more round converges)."""
    for i in range(tries):
        try:
            return await attempt()
        except TargetsChanged:
            if i == tries - 1:
                raise
    return None


# --- lifecycle ---


async def adopt(engine: AsyncEngine, spec: str) -> EmbeddingModel:
    """The active model, after giving it its digest and spec if it has none yet and `spec` is the same model by name
    and dimension (the row the registry's migration made for the index built before it)."""
    identity = await asyncio.to_thread(identity_of, spec)
    async with session_scope(engine) as session:
        active = await active_model(session)
        if active.digest is None and active.name == identity.name and active.dims == identity.dims:
            # Conditional: of two processes adopting at once, one writes and both read the same digest after.
            await session.execute(
                update(EmbeddingModel)
                .where(col(EmbeddingModel.id) == active.id, col(EmbeddingModel.digest).is_(None))
                .values(digest=identity.digest, spec=spec)
            )
            await session.refresh(active)
        return active


async def declare(engine: AsyncEngine, spec: str) -> tuple[EmbeddingModel, bool]:
    """The model `spec` names, registered: (its row, whether it now needs a backfill). The active model needs none;
    a building one continues; a retired one whose vectors are still kept is built again (a catch-up); a new one is
    registered `building` with an empty vector table. Committed before anyone starts a backfill for it.

    The model declared last is the one wanted: any other still `building` is retired (its backfill stands down at
    its next batch, and its switch refuses), so changing one's mind (A -> B -> A, or A -> B -> C) never lets the
    abandoned backfill finish and switch in."""
    await adopt(engine, spec)
    identity = await asyncio.to_thread(identity_of, spec)
    if identity.dims is None:
        raise ValueError(f"cannot tell the dimension of embedding model {spec!r}")
    async with session_scope(engine) as session:
        await lock_for_transaction(session, "embedding-models")
        rows = list((await session.execute(select(EmbeddingModel).order_by(col(EmbeddingModel.id)))).scalars())
        same = [r for r in rows if r.digest == identity.digest and r.dims == identity.dims and r.dropped_at is None]
        model = same[-1] if same else None
        now = datetime.now(UTC)
        for other in rows:
            if other.status == BUILDING and other is not model:
                # Never active, so nothing to fall back on: its partial vectors go at the next sweep.
                other.status, other.retired_at, other.drop_after = RETIRED, now, now
        if model is not None:
            if model.status == RETIRED:
                model.status, model.retired_at, model.drop_after = BUILDING, None, None
            model.spec = spec
            return model, model.status == BUILDING
        model = EmbeddingModel(
            name=identity.name, digest=identity.digest, dims=identity.dims, status=BUILDING, spec=spec
        )
        session.add(model)
        await session.flush()
        for statement in vector_table_ddl(model.id or 0, identity.dims):
            await session.execute(sa.text(statement))
        return model, True


def _missing_query(model: EmbeddingModel) -> str:
    table = vector_table_name(model.id or 0)
    return f"FROM media_chunks c WHERE NOT EXISTS (SELECT 1 FROM {table} v WHERE v.chunk_id = c.id)"


async def missing_count(session: AsyncSession, model: EmbeddingModel) -> int:
    return int((await session.execute(sa.text(f"SELECT count(*) {_missing_query(model)}"))).scalar_one())


async def missing_chunks(
    session: AsyncSession, model: EmbeddingModel, after: str | None, limit: int
) -> list[tuple[Any, Any, str]]:
    """(chunk id, media id, text) of passages without a vector of `model`, in id order after the cursor."""
    where = "AND c.id > CAST(:after AS uuid)" if after else ""
    rows = await session.execute(
        sa.text(f"SELECT c.id, c.media_id, c.text {_missing_query(model)} {where} ORDER BY c.id LIMIT :limit"),
        {"after": after, "limit": limit},
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def insert_vectors(
    session: AsyncSession, model: EmbeddingModel, rows: Iterable[tuple[Any, Any]], vectors: Any
) -> int:
    """Backfill rows ((chunk id, media id) with their vectors); a vector a writer stored meanwhile wins."""
    values = _vector_rows(rows, vectors)
    if not values:
        return 0
    table = vector_table(model.id or 0, model.dims)
    stmt = insert(table).on_conflict_do_nothing(index_elements=["chunk_id"]).returning(table.c.chunk_id)
    return len((await session.execute(stmt, values)).all())


@dataclass(frozen=True)
class SwitchOutcome:
    switched: bool
    missing: int
    active: str
    retired: str | None = None


async def switch(engine: AsyncEngine, model_id: int, grace: timedelta) -> SwitchOutcome:
    """Make a fully built model the active one, in one transaction: writers are held off (FOR UPDATE on the
    registry rows they lock FOR SHARE), the backfill is re-checked complete under that lock, then the old active
    model is retired (dropped after `grace`) and this one activated. Not complete: nothing changes."""
    async with session_scope(engine) as session:
        query = select(EmbeddingModel).where(col(EmbeddingModel.status).in_((ACTIVE, BUILDING))).with_for_update()
        rows = {r.id: r for r in (await session.execute(query)).scalars()}
        model = rows.get(model_id)
        if model is None:
            current = await active_model(session)
            return SwitchOutcome(switched=current.id == model_id, missing=0, active=label(current))
        if model.status == ACTIVE:
            return SwitchOutcome(switched=True, missing=0, active=label(model))
        missing = await missing_count(session, model)
        previous = next(r for r in rows.values() if r.status == ACTIVE)
        if missing:
            return SwitchOutcome(switched=False, missing=missing, active=label(previous))
        if not await hnsw_ready(session, model_id):
            raise RuntimeError(f"{label(model)} has no valid HNSW index yet: build_index first")
        now = datetime.now(UTC)
        previous.status, previous.retired_at, previous.drop_after = RETIRED, now, now + grace
        await session.flush()  # the one-active index sees the old row retired before the new one activates
        model.status, model.activated_at = ACTIVE, now
        return SwitchOutcome(switched=True, missing=0, active=label(model), retired=label(previous))


async def drop_expired(engine: AsyncEngine, now: datetime | None = None, *, dry_run: bool = False) -> list[int]:
    """Retired models past their grace period: their vector tables and memory collections dropped."""
    now = now or datetime.now(UTC)
    async with session_scope(engine) as session:
        # Serialized with `declare`: one reviving this model must not see it before its tables go and commit after
        # (a `building` model with no vector table stops every writer).
        await lock_for_transaction(session, "embedding-models")
        query = select(EmbeddingModel).where(
            col(EmbeddingModel.status) == RETIRED,
            col(EmbeddingModel.dropped_at).is_(None),
            col(EmbeddingModel.drop_after) <= now,
        )
        expired = list((await session.execute(query.with_for_update())).scalars())
        if dry_run:
            return [m.id or 0 for m in expired]
        for model in expired:
            await session.execute(sa.text(f"DROP TABLE IF EXISTS {vector_table_name(model.id or 0)}"))
            await session.execute(sa.text(f'DROP TABLE IF EXISTS "{memory_collection(model.id or 0)}"'))
            model.dropped_at = now
        return [m.id or 0 for m in expired]


@dataclass(frozen=True)
class ModelState:
    id: int
    name: str
    digest: str | None
    dims: int
    status: str
    spec: str
    vectors: int
    missing: int
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    drop_after: datetime | None
    dropped_at: datetime | None

    @property
    def label(self) -> str:
        return model_label(self.name, self.digest, self.dims)


async def states(engine: AsyncEngine) -> list[ModelState]:
    """Every registered model, with its vectors and the passages still without one (progress of a backfill)."""
    async with session_scope(engine) as session:
        rows = list((await session.execute(select(EmbeddingModel).order_by(col(EmbeddingModel.id)))).scalars())
        found = []
        for r in rows:
            vectors = missing = 0
            if r.dropped_at is None:
                table = vector_table_name(r.id or 0)
                vectors = int((await session.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())
                missing = await missing_count(session, r)
            fields = {k: getattr(r, k) for k in ("name", "digest", "dims", "status", "spec", "created_at")}
            dates = {k: getattr(r, k) for k in ("activated_at", "retired_at", "drop_after", "dropped_at")}
            found.append(ModelState(id=r.id or 0, vectors=vectors, missing=missing, **fields, **dates))
    return found
