"""Search benchmark on synthetic data: latency of the hybrid and semantic legs, and HNSW recall@10.

    python bench/search.py [--n 100000] [--queries 200]

Starts a throwaway embedded Postgres, migrates it, bulk-loads N chunks (384-d vectors drawn around 2,000 topic
centres, so neighbours mean something; text from a Zipf-distributed vocabulary so keywords are rare or common
like real words), builds the HNSW index after the load, then runs the production query code (`nexus.search.service`)
for one user. Prints p50/p95 per mode and recall@10 of the HNSW leg against exact (sequential) search.
Goals on the 2-core machine: p95 <= 25 ms, recall >= 0.95. Query embedding (MiniLM) is timed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
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


async def load(url: str, n: int, rng: np.random.Generator) -> tuple[uuid.UUID, np.ndarray, list[str]]:
    import asyncpg
    from pgvector.asyncpg import register_vector

    vectors, texts, _ = synthetic(n, rng)
    owner, media = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await register_vector(conn)  # binary COPY of vectors (a raw connection, not the app's SQLAlchemy engine)
    try:
        await conn.execute(
            "INSERT INTO users (id, created_at, email, is_admin, is_active) VALUES ($1, now(), $2, false, true)",
            owner,
            f"bench-{owner.hex[:8]}@example.test",
        )
        await conn.execute(
            "INSERT INTO media_items (id, created_at, updated_at, owner_id, source_type, status, tags, title) "
            "VALUES ($1, now(), now(), $2, 'file', 'completed', '{}', 'synthetic')",
            media,
            owner,
        )
        await conn.execute("DROP INDEX IF EXISTS ix_media_chunks_embedding_hnsw")
        started = time.perf_counter()
        records = [
            (
                uuid.uuid4(),
                now,
                media,
                owner,
                i,
                float(i),
                float(i + 1),
                texts[i],
                vectors[i],
                "synthetic",
                DIMS,
            )
            for i in range(n)
        ]
        await conn.copy_records_to_table(
            "media_chunks",
            records=records,
            columns=["id", "created_at", "media_id", "owner_id", "idx", "start_s", "end_s", "text", "embedding",
                     "embedding_model", "dims"],
        )  # fmt: skip
        loaded = time.perf_counter() - started
        await conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        await conn.execute(
            "CREATE INDEX ix_media_chunks_embedding_hnsw ON media_chunks USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        built = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE media_chunks")
    finally:
        await conn.close()
    print(f"loaded {n} chunks in {loaded:.1f} s, built HNSW in {built:.1f} s")
    return owner, vectors, texts


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def measure(url: str, owner: uuid.UUID, vectors: np.ndarray, texts: list[str], queries: int) -> None:
    from sqlalchemy import text

    from nexus.core.db import make_engine, session_maker
    from nexus.core.settings import Settings
    from nexus.llm.embeddings import Embedder
    from nexus.search.service import SearchMode, search

    rng = np.random.default_rng(7)
    engine = make_engine(url)
    embedder = Embedder(Settings())
    picks = rng.integers(0, len(vectors), size=queries)
    qvecs = vectors[picks] + rng.normal(scale=0.02, size=(queries, DIMS)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    # Keyword queries: two of the chunk's words outside the 100 most frequent ones, as a stop-word list and real
    # vocabulary would make them (queries for names and rare words are what the keyword leg is for).
    qtexts = [" ".join([w for w in texts[i].split() if int(w[1:]) >= 100][:2] or texts[i].split()[:2]) for i in picks]

    timings: dict[str, list[float]] = {"semantic": [], "hybrid": [], "keyword": []}
    recalls = []
    async with session_maker(engine)() as session:
        for mode in timings:  # warm caches
            await search(session, embedder, owner, qtexts[0], mode=SearchMode(mode), vector=qvecs[0].tolist())
        await session.rollback()
        modes = list(timings)
        for n, (qv, qt) in enumerate(zip(qvecs, qtexts, strict=True)):
            for mode in modes[n % 3 :] + modes[: n % 3]:  # rotate, so no mode always runs on warm buffers
                started = time.perf_counter()
                hits = await search(session, embedder, owner, qt, limit=10, mode=SearchMode(mode), vector=qv.tolist())
                timings[mode].append((time.perf_counter() - started) * 1000)
                await session.rollback()
                if mode == "semantic":
                    approx = {h.chunk_id for h in hits}
            await session.execute(text("SET LOCAL enable_indexscan = off"))
            exact = await session.execute(
                text(
                    "SELECT id FROM media_chunks WHERE owner_id = :o ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                ),
                {"o": owner, "q": str(qv.tolist())},
            )
            truth = {r[0] for r in exact}
            await session.rollback()
            recalls.append(len(approx & truth) / len(truth))
    embed_ms = []
    for qt in qtexts[:50]:
        started = time.perf_counter()
        embedder.embed([qt])
        embed_ms.append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    for mode, values in timings.items():
        print(f"{mode:9} p50 {statistics.median(values):6.2f} ms   p95 {pct(values, 95):6.2f} ms   (n={len(values)})")
    print(f"query embedding (MiniLM, CPU) p50 {statistics.median(embed_ms):.2f} ms  p95 {pct(embed_ms, 95):.2f} ms")
    print(f"HNSW recall@10 vs exact: {statistics.mean(recalls):.3f}  (goal >= 0.95)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    from nexus.core.embedded import EmbeddedPostgres
    from nexus.ops.migrate import upgrade_async

    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres")
        url = pg.start()
        try:
            await upgrade_async(url)
            owner, vectors, texts = await load(url, args.n, np.random.default_rng(1))
            await measure(url, owner, vectors, texts, args.queries)
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
