"""Search benchmark on synthetic data: latency of the hybrid and semantic legs, and HNSW recall@10, per user.

    python bench/search.py [--users 100] [--per-user 1000] [--items 10] [--queries 200]

Starts a throwaway embedded Postgres, migrates it, bulk-loads USERS x PER_USER chunks (384-d vectors drawn around
2,000 topic centres shared by everyone, so neighbours mean something and a query's nearest neighbours mostly belong
to other users; text from a Zipf-distributed vocabulary so keywords are rare or common like real words), each user
with a personal workspace and ITEMS media items, builds the HNSW index after the load, then runs the production
query code (`nexus.search.service`). The headline is the per-user query: each query is made by the owner of the
chunk it was drawn from, who may read 1/USERS of the chunks, so the read rule discards most of what the HNSW
index finds. For comparison it also times one reader who is a member of every workspace (the filter discards
nothing: what a single-owner database measures). Prints p50/p95 per mode and recall@10 of the semantic leg
against exact search over what the reader may read. `--users 1 --per-user 100000` is the old single-owner layout.
Goals on the 2-core machine: p95 <= 25 ms, recall >= 0.95 (per user). Query embedding (MiniLM) is timed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIMS = 384


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    centres = rng.normal(size=(2000, DIMS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, len(centres), size=n)
    # Noise of norm ~0.6 around unit centres: points of one topic are near each other, as real embeddings are.
    vectors = centres[labels] + rng.normal(scale=0.6 / np.sqrt(DIMS), size=(n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocab = [f"w{i:05d}" for i in range(20000)]
    ranks = np.minimum(rng.zipf(1.3, size=(n, 40)), len(vocab)) - 1
    texts = [" ".join(vocab[r] for r in row) for row in ranks]
    return vectors, texts, centres


@dataclass
class Dataset:
    vectors: np.ndarray
    texts: list[str]
    owners: list[uuid.UUID]  # per user
    chunk_owner: np.ndarray  # per chunk: index into `owners`
    reader_of_all: uuid.UUID  # a member of every user's workspace


async def load(url: str, users: int, per_user: int, items: int, rng: np.random.Generator) -> Dataset:
    import asyncpg
    from pgvector.asyncpg import register_vector

    n = users * per_user
    vectors, texts, _ = synthetic(n, rng)
    chunk_owner = np.arange(n) // per_user  # topics are drawn at random, so every user's chunks span them all
    owners = [uuid.uuid4() for _ in range(users)]
    workspaces = [uuid.uuid4() for _ in range(users)]
    media = [[uuid.uuid4() for _ in range(items)] for _ in range(users)]
    reader = uuid.uuid4()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await register_vector(conn)  # binary COPY of vectors (a raw connection, not the app's SQLAlchemy engine)
    try:
        await conn.copy_records_to_table(
            "users",
            records=[(u, now, f"bench-{u.hex[:12]}@example.test", False, True) for u in [*owners, reader]],
            columns=["id", "created_at", "email", "is_admin", "is_active"],
        )
        await conn.copy_records_to_table(
            "workspaces",
            records=[(w, now, "Personal", f"bench-{w.hex[:12]}", u) for w, u in zip(workspaces, owners, strict=True)],
            columns=["id", "created_at", "name", "slug", "owner_id"],
        )
        members = [(uuid.uuid4(), now, w, u, "owner") for w, u in zip(workspaces, owners, strict=True)]
        members += [(uuid.uuid4(), now, w, reader, "viewer") for w in workspaces]
        await conn.copy_records_to_table(
            "workspace_members", records=members, columns=["id", "created_at", "workspace_id", "user_id", "role"]
        )
        await conn.copy_records_to_table(
            "media_items",
            records=[
                (m, now, now, owners[u], workspaces[u], "file", "completed", [], f"synthetic {u}/{k}")
                for u in range(users)
                for k, m in enumerate(media[u])
            ],
            columns=["id", "created_at", "updated_at", "owner_id", "workspace_id", "source_type", "status", "tags",
                     "title"],
        )  # fmt: skip
        model_id = await conn.fetchval("SELECT id FROM embedding_models WHERE status = 'active'")
        table = f"chunk_vectors_{model_id}"
        await conn.execute(f"DROP INDEX IF EXISTS ix_{table}_hnsw")
        started = time.perf_counter()
        records, vector_records = [], []
        for i in range(n):
            u, k = int(chunk_owner[i]), i % per_user
            item = media[u][k * items // per_user]
            chunk = uuid.uuid4()
            records.append((chunk, now, item, owners[u], k, float(k), float(k + 1), texts[i]))
            vector_records.append((chunk, item, vectors[i]))
        await conn.copy_records_to_table(
            "media_chunks",
            records=records,
            columns=["id", "created_at", "media_id", "owner_id", "idx", "start_s", "end_s", "text"],
        )
        await conn.copy_records_to_table(table, records=vector_records, columns=["chunk_id", "media_id", "embedding"])
        loaded = time.perf_counter() - started
        await conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        await conn.execute(
            f"CREATE INDEX ix_{table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        built = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(
        f"loaded {n} chunks ({users} users x {per_user}, {items} items each) in {loaded:.1f} s, "
        f"built HNSW in {built:.1f} s"
    )
    return Dataset(vectors, texts, owners, chunk_owner, reader)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def measure(url: str, data: Dataset, queries: int) -> None:
    from sqlalchemy import event, text

    from nexus.core.db import make_engine, session_maker
    from nexus.llm.embeddings import Embedder
    from nexus.search.service import SearchMode, search

    rng = np.random.default_rng(7)
    engine = make_engine(url)
    embedder = Embedder()
    vectors, texts = data.vectors, data.texts
    picks = rng.integers(0, len(vectors), size=queries)
    qvecs = vectors[picks] + rng.normal(scale=0.02, size=(queries, DIMS)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    # Keyword queries: two of the chunk's words outside the 100 most frequent ones, as a stop-word list and real
    # vocabulary would make them (queries for names and rare words are what the keyword leg is for).
    qtexts = [" ".join([w for w in texts[i].split() if int(w[1:]) >= 100][:2] or texts[i].split()[:2]) for i in picks]
    semantic_sql: list[tuple[str, object]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "<=>" in statement and not semantic_sql:
            semantic_sql.append((statement, parameters))

    async def run(label: str, readers: list[uuid.UUID], owner_only: bool) -> None:
        """Time `queries` searches, query i made by readers[i]; recall against exact search over what each may
        read (the owner's chunks, or all of them)."""
        timings: dict[str, list[float]] = {"semantic": [], "hybrid": [], "keyword": []}
        recalls, exact_ms = [], []
        plan = ""
        async with session_maker(engine)() as session:
            for mode in timings:  # warm caches
                await search(
                    session,
                    lambda _spec: embedder,
                    readers[0],
                    qtexts[0],
                    mode=SearchMode(mode),
                    vector=qvecs[0].tolist(),
                )
            await session.rollback()
            modes = list(timings)
            for n, (reader, qv, qt) in enumerate(zip(readers, qvecs, qtexts, strict=True)):
                for mode in modes[n % 3 :] + modes[: n % 3]:  # rotate, so no mode always runs on warm buffers
                    semantic_sql.clear()
                    started = time.perf_counter()
                    hits = await search(
                        session, lambda _spec: embedder, reader, qt, limit=10, mode=SearchMode(mode), vector=qv.tolist()
                    )
                    timings[mode].append((time.perf_counter() - started) * 1000)
                    if mode == "semantic":
                        approx = {h.chunk_id for h in hits}
                        if not plan:  # how Postgres ran the semantic leg (same statement, same transaction)
                            statement, parameters = semantic_sql[0]
                            conn = await session.connection()
                            lines = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).scalars().all()
                            plan = "HNSW index scan" if any("_hnsw" in ln for ln in lines) else "exact"
                    await session.rollback()
                await session.execute(text("SET LOCAL enable_indexscan = off"))
                where = "WHERE c.owner_id = :o" if owner_only else ""
                started = time.perf_counter()
                exact = await session.execute(
                    text(
                        "SELECT c.id FROM chunk_vectors_1 v JOIN media_chunks c ON c.id = v.chunk_id "
                        f"{where} ORDER BY v.embedding <=> CAST(:q AS vector) LIMIT 10"
                    ),
                    {"q": str(qv.tolist())} | ({"o": reader} if owner_only else {}),
                )
                truth = {r[0] for r in exact}
                exact_ms.append((time.perf_counter() - started) * 1000)
                await session.rollback()
                recalls.append(len(approx & truth) / len(truth))
        print(label)
        for mode, values in timings.items():
            p50, p95 = statistics.median(values), pct(values, 95)
            print(f"  {mode:9} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (n={len(values)})")
        print(f"  semantic leg: {plan}, recall@10 vs exact {statistics.mean(recalls):.3f}  (goal >= 0.95)")
        p50, p95 = statistics.median(exact_ms), pct(exact_ms, 95)
        print(f"  (exact search, no HNSW, for reference: p50 {p50:.2f} ms  p95 {p95:.2f} ms)")

    users, n = len(data.owners), len(vectors)
    await run(
        f"per user (the headline): each query by the chunk's owner, one of {users} users, who may read "
        f"{n // users} of {n} chunks",
        [data.owners[data.chunk_owner[i]] for i in picks],
        owner_only=True,
    )
    await run(
        f"one reader of all {n} chunks (a member of every workspace; the read rule discards nothing)",
        [data.reader_of_all] * queries,
        owner_only=False,
    )
    embedder.embed([qtexts[0]])  # load the model outside the timings
    embed_ms = []
    for qt in qtexts[:50]:
        started = time.perf_counter()
        embedder.embed([qt])
        embed_ms.append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    print(f"query embedding (MiniLM, CPU) p50 {statistics.median(embed_ms):.2f} ms  p95 {pct(embed_ms, 95):.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100, help="users, each with a personal workspace")
    parser.add_argument("--per-user", type=int, default=1000, help="chunks per user")
    parser.add_argument("--items", type=int, default=10, help="media items per user (chunks split among them)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    if args.users < 1 or args.per_user < args.items or args.items < 1:
        parser.error("need --users >= 1 and --per-user >= --items >= 1")

    from nexus.core.embedded import EmbeddedPostgres
    from nexus.ops.migrate import upgrade_async

    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres")
        url = pg.start()
        try:
            await upgrade_async(url)
            data = await load(url, args.users, args.per_user, args.items, np.random.default_rng(1))
            await measure(url, data, args.queries)
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
