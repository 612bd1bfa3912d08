"""Hybrid retrieval over transcript chunks: pgvector HNSW (cosine) + Postgres full-text, fused with RRF (k=60).

The keyword leg finds exact names and rare words that embeddings blur; the semantic leg finds paraphrases that
share no words with the passage. Every query sees only media the caller may read (`nexus.identity.access`).
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.identity.access import visible_media_ids_sql
from nexus.llm.embeddings import Embedder

RRF_K = 60
HNSW_EF_SEARCH = 100


class SearchMode(enum.StrEnum):
    hybrid = "hybrid"
    semantic = "semantic"
    keyword = "keyword"


@dataclass
class SearchFilters:
    media_ids: list[uuid.UUID] | None = None
    tags: list[str] | None = None
    source_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class Hit:
    chunk_id: uuid.UUID
    media_id: uuid.UUID
    title: str | None
    start_s: float
    end_s: float
    text: str
    score: float = 0.0
    legs: list[str] = field(default_factory=list)


def _filter_sql(filters: SearchFilters, params: dict[str, object]) -> str:
    clauses = [f"c.media_id IN ({visible_media_ids_sql('user')})"]
    if filters.media_ids:
        clauses.append("c.media_id = ANY(:media_ids)")
        params["media_ids"] = list(filters.media_ids)
    if filters.tags:
        clauses.append("m.tags && CAST(:tags AS varchar(40)[])")
        params["tags"] = [t.lower() for t in filters.tags]
    if filters.source_type:
        clauses.append("m.source_type = :source_type")
        params["source_type"] = filters.source_type
    if filters.created_after:
        clauses.append("m.created_at >= :created_after")
        params["created_after"] = filters.created_after
    if filters.created_before:
        clauses.append("m.created_at < :created_before")
        params["created_before"] = filters.created_before
    return " AND ".join(clauses)


async def _semantic(session: AsyncSession, vector: list[float], where: str, params: dict, k: int) -> list[Hit]:
    # Iterative scans keep HNSW recall when the owner/filters discard most neighbours (pgvector >= 0.8).
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await session.execute(text(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}"))
    rows = await session.execute(
        text(
            f"""SELECT c.id, c.media_id, m.title, c.start_s, c.end_s, c.text,
                       1 - (c.embedding <=> CAST(:qvec AS vector)) AS score
                FROM media_chunks c JOIN media_items m ON m.id = c.media_id
                WHERE {where}
                ORDER BY c.embedding <=> CAST(:qvec AS vector)
                LIMIT :k"""
        ),
        {**params, "qvec": str(vector), "k": k},
    )
    return [Hit(*r[:6], score=float(r[6])) for r in rows]


async def _keyword(session: AsyncSession, query: str, where: str, params: dict, k: int) -> list[Hit]:
    rows = await session.execute(
        text(
            f"""SELECT c.id, c.media_id, m.title, c.start_s, c.end_s, c.text, ts_rank_cd(c.tsv, q) AS score
                FROM media_chunks c JOIN media_items m ON m.id = c.media_id,
                     websearch_to_tsquery('english', :query) q
                WHERE c.tsv @@ q AND {where}
                ORDER BY score DESC
                LIMIT :k"""
        ),
        {**params, "query": query, "k": k},
    )
    return [Hit(*r[:6], score=float(r[6])) for r in rows]


def fuse(legs: dict[str, list[Hit]], limit: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over legs of 1 / (k + rank)."""
    fused: dict[uuid.UUID, Hit] = {}
    for leg, hits in legs.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(
                hit.chunk_id, Hit(hit.chunk_id, hit.media_id, hit.title, hit.start_s, hit.end_s, hit.text)
            )
            entry.score += 1.0 / (RRF_K + rank)
            entry.legs.append(leg)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


async def search(
    session: AsyncSession,
    embedder: Embedder,
    user_id: uuid.UUID,
    query: str,
    *,
    limit: int = 10,
    mode: SearchMode = SearchMode.hybrid,
    filters: SearchFilters | None = None,
    vector: list[float] | None = None,
) -> list[Hit]:
    """`vector` skips embedding the query (benchmarks pass precomputed ones)."""
    params: dict[str, object] = {"user": user_id}
    where = _filter_sql(filters or SearchFilters(), params)
    candidates = max(limit * 4, 40)
    legs: dict[str, list[Hit]] = {}
    if mode in (SearchMode.hybrid, SearchMode.semantic):
        if vector is None:
            vector = await asyncio.to_thread(embedder.embed_query, query)
        legs["semantic"] = await _semantic(session, vector, where, params, candidates)
    if mode in (SearchMode.hybrid, SearchMode.keyword):
        legs["keyword"] = await _keyword(session, query, where, params, candidates)
    if mode is not SearchMode.hybrid:
        (only,) = legs.values()
        for hit in only:
            hit.legs = list(legs)
        return only[:limit]
    return fuse(legs, limit)
