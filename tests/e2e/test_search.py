"""Hybrid search: exact words via the keyword leg, paraphrases via the semantic leg, always scoped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nexus.runtime import Runtime
from tests.conftest import account_with_clips
from tests.harness import LiveServer


@dataclass
class Library:
    headers: dict[str, str]
    media: dict[str, str]  # clip name -> media id


@pytest.fixture(scope="module")
async def library(runtime: Runtime, live_api: LiveServer, clips: dict[str, Path]) -> Library:
    return Library(*await account_with_clips(runtime, live_api.url, clips, ["a_wav", "b_wav", "c_webm"], "search"))


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
    only_b = await _search(api, library, "lighthouse", filters={"media_ids": [library.media["b_wav"]]})
    assert {r["media_id"] for r in only_b} <= {library.media["b_wav"]}
    assert await _search(api, library, "dentist", filters={"source_type": "mic"}) == []  # uploaded as "file"
    future = await _search(api, library, "dentist", filters={"created_after": "2999-01-01T00:00:00Z"})
    assert future == []


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
