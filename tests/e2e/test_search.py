"""Hybrid search: exact words via the keyword leg, paraphrases via the semantic leg, always scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from nexus.runtime import Runtime
from tests.conftest import account_with_clips, follow_job
from tests.e2e.test_media_pipeline import _upload
from tests.harness import LiveServer


@dataclass
class Library:
    headers: dict[str, str]
    media: dict[str, str]  # clip name -> media id


@pytest.fixture(scope="module")
async def library(runtime: Runtime, live_api: LiveServer, clips: dict[str, Path]) -> Library:
    """a and b uploaded as files, then c recorded from the mic: three items, in that order, two source types."""
    headers, media = await account_with_clips(runtime, live_api.url, clips, ["a_wav", "b_wav"], "search")
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
        resp = await _upload(api, headers, clips["c_webm"], source="mic")
        assert resp.status_code == 202, resp.text
        events = await follow_job(api, headers, resp.json()["job_id"])
    assert events[-1]["stage"] == "completed", events[-1]
    return Library(headers, media | {"c_webm": resp.json()["media_id"]})


async def _search(api: httpx.AsyncClient, lib: Library, query: str, **body: object) -> list[dict]:
    resp = await api.post("/api/search", json={"query": query, **body}, headers=lib.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


async def test_exact_rare_name_is_found_by_the_keyword_leg(api: httpx.AsyncClient, library: Library) -> None:
    results = await _search(api, library, "Margaret")
    assert results[0]["media_id"] == library.media["c_webm"]
    assert "keyword" in results[0]["matched"]
    keyword_only = await _search(api, library, "Margaret", mode="keyword")
    assert [r["media_id"] for r in keyword_only] == [library.media["c_webm"]]
    assert keyword_only[0]["matched"] == ["keyword"]


async def test_paraphrase_is_found_by_the_semantic_leg(api: httpx.AsyncClient, library: Library) -> None:
    query = "making a homemade loaf with yeast culture"
    assert await _search(api, library, query, mode="keyword") == []  # shares no words with the clip
    results = await _search(api, library, query)
    assert results[0]["media_id"] == library.media["b_wav"]
    assert results[0]["matched"] == ["semantic"]
    top = await _search(api, library, "a person guarding the coast who logs passing vessels", mode="semantic")
    assert top[0]["media_id"] == library.media["a_wav"]


async def test_results_carry_times_snippets_and_scores(api: httpx.AsyncClient, library: Library) -> None:
    results = await _search(api, library, "lighthouse keeper ships")
    hit = results[0]
    assert hit["media_id"] == library.media["a_wav"] and set(hit["matched"]) == {"semantic", "keyword"}
    assert 0 <= hit["start"] < hit["end"] <= 10 and "lighthouse" in hit["snippet"].lower()
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


async def test_filters(api: httpx.AsyncClient, library: Library) -> None:
    a, b, c = (library.media[k] for k in ("a_wav", "b_wav", "c_webm"))
    items = {m: (await api.get(f"/api/media/{m}", headers=library.headers)).json() for m in (a, b, c)}
    created = {m: datetime.fromisoformat(items[m]["created_at"]) for m in items}
    assert created[a] < created[b] < created[c]  # uploaded one after the other
    assert [items[m]["source_type"] for m in (a, b, c)] == ["file", "file", "mic"]
    # A tag of a's own, from its enrichment (the extractive keyphrases of the lighthouse clip).
    tag_a = next(t for t in items[a]["tags"] if t not in items[b]["tags"] + items[c]["tags"])
    tag_b = next(t for t in items[b]["tags"] if t not in items[a]["tags"] + items[c]["tags"])

    async def found(mode: str = "hybrid", query: str = "lighthouse", **filters: object) -> set[str]:
        results = await _search(api, library, query, limit=50, mode=mode, filters=filters)
        return {r["media_id"] for r in results}

    # The semantic leg ranks every chunk the caller may read, so a hybrid search for anything returns exactly the
    # items the filters let through: each case below names what must come back and, by equality, what must not.
    assert await found() == {a, b, c}
    assert await found(media_ids=[b]) == {b}
    assert await found(media_ids=[a, c]) == {a, c}
    assert await found(tags=[tag_a]) == {a}
    assert await found(tags=[tag_a.upper(), tag_b]) == {a, b}  # any of the tags, case-insensitively
    assert await found(tags=["no-such-tag"]) == set()
    assert await found(source_type="file") == {a, b}
    assert await found(source_type="mic") == {c}
    assert await found(source_type="url") == set()
    assert await found(created_after=items[b]["created_at"]) == {b, c}  # inclusive
    assert await found(created_before=items[b]["created_at"]) == {a}  # exclusive
    assert await found(created_after=items[a]["created_at"], created_before=items[c]["created_at"]) == {a, b}
    assert await found(created_after="2999-01-01T00:00:00Z") == set()
    assert await found(created_before="2000-01-01T00:00:00Z") == set()
    # Filters combine with AND.
    assert await found(media_ids=[a, b, c], source_type="file", created_after=items[b]["created_at"]) == {b}
    assert await found(tags=[tag_a], source_type="mic") == set()
    # Both legs apply them: the keyword leg alone finds c by its rare word only when c passes the filter.
    assert await found("keyword", "Margaret") == {c}
    assert await found("keyword", "Margaret", source_type="mic", media_ids=[c]) == {c}
    assert await found("keyword", "Margaret", source_type="file") == set()
    assert await found("keyword", "Margaret", media_ids=[a, b]) == set()
    assert await found("semantic", tags=[tag_b]) == {b}


@pytest.mark.parametrize(
    ("body", "status"),
    [({"query": "   "}, 400), ({"query": "x" * 1001}, 422), ({}, 422), ({"query": "a", "limit": 0}, 422)],
)
async def test_bad_queries_get_a_clear_4xx(api: httpx.AsyncClient, library: Library, body: dict, status: int) -> None:
    resp = await api.post("/api/search", json=body, headers=library.headers)
    assert resp.status_code == status
    assert resp.json()["detail"]


async def test_search_never_returns_another_users_media(api: httpx.AsyncClient, library: Library, make_account) -> None:
    stranger = await make_account()
    for mode in ("hybrid", "semantic", "keyword"):
        resp = await api.post("/api/search", json={"query": "Margaret dentist", "mode": mode}, headers=stranger.headers)
        assert resp.status_code == 200 and resp.json()["results"] == []
    assert (await api.post("/api/search", json={"query": "Margaret"})).status_code == 401
