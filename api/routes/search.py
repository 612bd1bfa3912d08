"""Hybrid search over the caller's transcripts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from api.deps import CurrentUser, RuntimeDep, SessionDep
from models import SourceType
from nexus.llm import registry
from nexus.search.service import SearchFilters, SearchMode, search

router = APIRouter(prefix="/api", tags=["search"])
MAX_QUERY_CHARS = 1000


class Filters(BaseModel):
    media_ids: list[uuid.UUID] | None = None
    tags: list[str] | None = None
    source_type: SourceType | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class SearchRequest(BaseModel):
    query: str = Field(max_length=MAX_QUERY_CHARS, description=f"1-{MAX_QUERY_CHARS} characters")
    limit: int = Field(default=10, ge=1, le=50)
    mode: SearchMode = SearchMode.hybrid
    filters: Filters = Field(default_factory=Filters)


class SearchResult(BaseModel):
    media_id: uuid.UUID
    title: str | None
    snippet: str
    start: float
    end: float
    at: float = Field(description="Where to start playing: the first word matching the query (word timings).")
    speaker: str | None = Field(default=None, description="Who speaks there (a given name, else S1, S2, ...).")
    track: Literal["transcript", "translation"] = Field(
        default="transcript", description="`translation`: the snippet is the English translation of what was said."
    )
    score: float
    matched: list[str] = Field(description="which legs found it: semantic, keyword")


class SearchResponse(BaseModel):
    query: str
    mode: SearchMode
    model: str = Field(description="The embedding model the semantic leg used: the index's active one.")
    results: list[SearchResult]


def snippet(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


@router.post("/search")
async def search_media(
    body: SearchRequest, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> SearchResponse:
    query = body.query.strip()
    if not query:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the query is empty: send some words to search for")
    hits = await search(
        session,
        runtime.embedder_for,
        user.id,
        query,
        limit=body.limit,
        mode=body.mode,
        filters=SearchFilters(**body.filters.model_dump()),
    )
    return SearchResponse(
        query=query,
        mode=body.mode,
        model=registry.label(await registry.active_model(session)),
        results=[
            SearchResult(
                media_id=h.media_id,
                title=h.title,
                snippet=snippet(h.text),
                start=h.start_s,
                end=h.end_s,
                at=h.at_s if h.at_s is not None else h.start_s,
                speaker=h.speaker,
                track=h.track,  # type: ignore[arg-type]
                score=round(h.score, 6),
                matched=h.legs,
            )
            for h in hits
        ],
    )
