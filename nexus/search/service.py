"""Hybrid retrieval over transcript chunks: pgvector HNSW (cosine) + Postgres full-text, fused with RRF (k=60).

The keyword leg finds exact names and rare words that embeddings blur; the semantic leg finds paraphrases that
share no words with the passage. Every query sees only media the caller may read (`nexus.identity.access`).
"""

from __future__ import annotations

import asyncio
import enum
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.identity.access import visible_media_ids_sql
from nexus.llm.embeddings import Embedder
from nexus.llm.registry import active_model, check_loadable, vector_table_name

RRF_K = 60
HNSW_EF_SEARCH = 100
EXACT_SCAN_MAX = 50_000
"""Readers who may read at most this many chunks get an exact scan of them instead of the HNSW index.

The index is shared by every user: for one user's query it finds the nearest chunks of *everyone*, and the read
rule then discards nearly all of them (measured, 100 users x 1k chunks: p50 108 ms, recall@10 0.85, even with
iterative scans). Scanning the reader's own chunks exactly is faster up to tens of thousands of chunks and never
misses; past that the index pays off again."""
EXACT_SCAN_MAX_ITEMS = 5_000
"""...and who may read at most this many media items (their ids are passed to the exact scan)."""


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
    at_s: float | None = None  # the second of the first word that matches the query (else the passage's start)
    speaker: str | None = None  # who speaks there: a name given to the label, else the label
    track: str = "transcript"  # or "translation": the passage is the English translation of what was said


_WORD = re.compile(r"\w+", re.UNICODE)
# Words a question is made of but no passage is found by (the keyword leg's English dictionary drops them too).
_STOPWORDS = frozenset(
    "the and for are was were did does how what who whom which when where why you your our their they them this "
    "that these those with from into about there here have has had not but can could would should will shall "
    "its his her him she any all some many much more most than then also just only very been being".split()
)


def terms_of(query: str) -> set[str]:
    """The query's words worth finding in speech (case- and accent-insensitive; no short or function words)."""
    return {t for t in (_fold(w) for w in _WORD.findall(query)) if len(t) > 2 and t not in _STOPWORDS}


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def first_match_second(words: list[list[Any]], terms: set[str], start: float, end: float) -> float | None:
    """The start of the first word within [start, end] that is (or begins with) a query term."""
    for word, w_start, _w_end, *_ in words:
        if w_start < start - 0.01 or w_start > end:
            continue
        folded = "".join(_WORD.findall(_fold(str(word))))
        if folded and any(folded == t or (len(t) > 3 and folded.startswith(t)) for t in terms):
            return float(w_start)
    return None


async def locate(session: AsyncSession, hits: list[Hit], query: str) -> None:
    """Point each hit at the second its first matching word is spoken (word timings), so a player opens there
    rather than at the start of a passage that may be a minute long."""
    terms = terms_of(query)
    for hit in hits:
        hit.at_s = hit.start_s
    if not hits:
        return
    rows = await session.execute(  # one round trip for every hit
        text(
            "SELECT h.i, s.words, s.speaker, m.speaker_names FROM unnest(CAST(:ids AS uuid[]), "
            "CAST(:starts AS float8[]), CAST(:ends AS float8[])) WITH ORDINALITY AS h(m, a, b, i) "
            # Segments overlapping the passage; touching it is not enough (segments abut: the one that ends where
            # the passage starts is the previous passage's, and its speaker is not this hit's).
            "JOIN transcript_segments s ON s.media_id = h.m "
            "AND (s.start_s = h.a OR (s.end_s > h.a AND s.start_s < h.b)) "
            "JOIN media_items m ON m.id = h.m ORDER BY h.i, s.idx"
        ),
        {
            "ids": [h.media_id for h in hits],
            "starts": [h.start_s for h in hits],
            "ends": [h.end_s for h in hits],
        },
    )
    located: set[int] = set()
    for i, words, speaker, names in rows:
        hit = hits[i - 1]
        if i in located:
            continue
        if hit.speaker is None and speaker:
            hit.speaker = (names or {}).get(speaker, speaker)
        found = first_match_second(words or [], terms, hit.start_s, hit.end_s) if terms else None
        if found is not None:
            hit.at_s = found
            hit.speaker = (names or {}).get(speaker, speaker) if speaker else hit.speaker
            located.add(i)


def _filter_sql(filters: SearchFilters, params: dict[str, object], *, media_only: bool = False) -> str:
    """The read rule and the filters as one WHERE clause: over chunks `c` joined to their media item `m`, or with
    `media_only`, over media items `m` alone (every filter is a property of the item)."""
    subject = "m.id" if media_only else "c.media_id"
    clauses = [f"{subject} IN ({visible_media_ids_sql('user')})"]
    if filters.media_ids:
        clauses.append(f"{subject} = ANY(:media_ids)")
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


async def _readable_media(session: AsyncSession, media_where: str, params: dict) -> list[uuid.UUID] | None:
    """The media items the query may draw from, when they are few enough for an exact scan of their chunks
    (None: too many, use the index). Fetched first because the planner cannot estimate the read rule's OR:
    given the ids as an array, it reaches their chunks by the media_id index instead of scanning every chunk."""
    rows = await session.execute(
        text(f"SELECT m.id FROM media_items m WHERE {media_where} LIMIT :cap"),
        {**params, "cap": EXACT_SCAN_MAX_ITEMS + 1},
    )
    ids = list(rows.scalars())
    if len(ids) > EXACT_SCAN_MAX_ITEMS:
        return None
    if not ids:
        return ids
    chunks = await session.execute(
        text("SELECT count(*) FROM (SELECT 1 FROM media_chunks WHERE media_id = ANY(:ids) LIMIT :cap) n"),
        {"ids": ids, "cap": EXACT_SCAN_MAX + 1},
    )
    return ids if int(chunks.scalar_one()) <= EXACT_SCAN_MAX else None


def _hit(row: Sequence[Any]) -> Hit:
    """A Hit from a row of (chunk id, media id, title, start, end, text, score, track)."""
    return Hit(row[0], row[1], row[2], row[3], row[4], row[5], score=float(row[6]), track=row[7])


async def _semantic(
    session: AsyncSession, model_id: int, vector: list[float], where: str, media_where: str, params: dict, k: int
) -> list[Hit]:
    """Nearest passages in the vector table of `model_id` (the active model: nexus.llm.registry)."""
    vectors = vector_table_name(model_id)
    readable = await _readable_media(session, media_where, params)
    if readable is not None:
        if not readable:
            return []
        # MATERIALIZED: rank the reader's chunks exactly (no index involved), then fetch text for the k nearest.
        rows = await session.execute(
            text(
                f"""WITH readable AS MATERIALIZED (
                       SELECT chunk_id AS id, embedding <=> CAST(:qvec AS vector) AS distance
                       FROM {vectors} WHERE media_id = ANY(:ids)
                   ), nearest AS (
                       SELECT id, distance FROM readable ORDER BY distance LIMIT :k
                   )
                   SELECT c.id, c.media_id, m.title, c.start_s, c.end_s, c.text, 1 - n.distance AS score, c.track
                   FROM nearest n JOIN media_chunks c ON c.id = n.id JOIN media_items m ON m.id = c.media_id
                   ORDER BY n.distance"""
            ),
            {"qvec": str(vector), "ids": readable, "k": k},
        )
        return [_hit(r) for r in rows]
    # Iterative scans keep HNSW recall when the owner/filters discard most neighbours (pgvector >= 0.8).
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await session.execute(text(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}"))
    rows = await session.execute(
        text(
            f"""SELECT c.id, c.media_id, m.title, c.start_s, c.end_s, c.text,
                       1 - (v.embedding <=> CAST(:qvec AS vector)) AS score, c.track
                FROM {vectors} v JOIN media_chunks c ON c.id = v.chunk_id JOIN media_items m ON m.id = c.media_id
                WHERE {where}
                ORDER BY v.embedding <=> CAST(:qvec AS vector)
                LIMIT :k"""
        ),
        {**params, "qvec": str(vector), "k": k},
    )
    # `relaxed_order` may return the k slightly out of distance order (pgvector's docs): re-sort, so the ranks
    # fed to the fusion are the real ones.
    return sorted((_hit(r) for r in rows), key=lambda h: h.score, reverse=True)


async def _keyword(session: AsyncSession, query: str, where: str, params: dict, k: int) -> list[Hit]:
    rows = await session.execute(
        text(
            f"""SELECT c.id, c.media_id, m.title, c.start_s, c.end_s, c.text, ts_rank_cd(c.tsv, q) AS score, c.track
                FROM media_chunks c JOIN media_items m ON m.id = c.media_id,
                     websearch_to_tsquery('english', :query) q
                WHERE c.tsv @@ q AND {where}
                ORDER BY score DESC
                LIMIT :k"""
        ),
        {**params, "query": query, "k": k},
    )
    return [_hit(r) for r in rows]


def fuse(legs: dict[str, list[Hit]], limit: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over legs of 1 / (k + rank)."""
    fused: dict[uuid.UUID, Hit] = {}
    for leg, hits in legs.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, replace(hit, score=0.0, legs=[]))
            entry.score += 1.0 / (RRF_K + rank)
            entry.legs.append(leg)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


async def search(
    session: AsyncSession,
    embedder_for: Callable[[str], Embedder],
    user_id: uuid.UUID,
    query: str,
    *,
    limit: int = 10,
    mode: SearchMode = SearchMode.hybrid,
    filters: SearchFilters | None = None,
    vector: list[float] | None = None,
) -> list[Hit]:
    """`embedder_for`: a model spec's embedder (`Runtime.embedder_for`); `vector` skips embedding the query
    (benchmarks pass precomputed ones)."""
    params: dict[str, object] = {"user": user_id}
    where = _filter_sql(filters or SearchFilters(), params)
    media_where = _filter_sql(filters or SearchFilters(), params, media_only=True)
    candidates = max(limit * 4, 40)
    legs: dict[str, list[Hit]] = {}
    if mode in (SearchMode.hybrid, SearchMode.semantic):
        # The index's active model, whatever this process is configured with: during a re-embedding queries keep
        # using the previous model's vectors until the switch.
        model = await active_model(session)
        if vector is None:
            check_loadable(model)
            vector = await asyncio.to_thread(embedder_for(model.spec).embed_query, query)
        legs["semantic"] = await _semantic(session, model.id or 0, vector, where, media_where, params, candidates)
    if mode in (SearchMode.hybrid, SearchMode.keyword):
        legs["keyword"] = await _keyword(session, query, where, params, candidates)
    if mode is not SearchMode.hybrid:
        (only,) = legs.values()
        for hit in only:
            hit.legs = list(legs)
        found = only[:limit]
    else:
        found = fuse(legs, limit)
    await locate(session, found, query)
    return found
