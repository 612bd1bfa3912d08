"""Reciprocal rank fusion of the semantic and keyword legs (`nexus.search.service.fuse`), and the filter SQL.

Hybrid search is only as good as its fusion: a passage both legs agree on must win, raw leg scores (cosine vs
ts_rank, incomparable scales) must not leak in, and each hit must say which legs found it. The filter SQL must keep
the caller's access scope first and bind user values as parameters, never splice them in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from nexus.search.service import RRF_K, Hit, SearchFilters, _filter_sql, fuse

MEDIA = uuid.uuid4()


def hit(name: str, score: float = 0.0) -> Hit:
    return Hit(uuid.uuid5(uuid.NAMESPACE_DNS, name), MEDIA, "Title", 1.0, 2.0, f"text of {name}", score=score)


def names(hits: list[Hit]) -> list[str]:
    return [h.text.removeprefix("text of ") for h in hits]


def rrf(*ranks: int) -> float:
    return sum(1.0 / (RRF_K + r) for r in ranks)


def test_hit_found_by_both_legs_outranks_single_leg_tops() -> None:
    # "both" is only 3rd and 2nd in its legs, yet beats each leg's number one.
    legs = {
        "semantic": [hit("sem-top"), hit("x"), hit("both")],
        "keyword": [hit("kw-top"), hit("both")],
    }
    fused = fuse(legs, 10)
    assert names(fused)[0] == "both"
    assert fused[0].legs == ["semantic", "keyword"]


def test_scores_are_sums_of_reciprocal_ranks() -> None:
    legs = {"semantic": [hit("a"), hit("b"), hit("c")], "keyword": [hit("c"), hit("d")]}
    scores = {n: h.score for n, h in zip(names(fuse(legs, 10)), fuse(legs, 10), strict=True)}
    assert scores == pytest.approx({"a": rrf(1), "b": rrf(2), "c": rrf(3, 1), "d": rrf(2)})


def test_legs_list_which_legs_matched() -> None:
    legs = {"semantic": [hit("a"), hit("b")], "keyword": [hit("b"), hit("c")]}
    by_name = dict(zip(names(fuse(legs, 10)), fuse(legs, 10), strict=True))
    assert by_name["a"].legs == ["semantic"]
    assert by_name["b"].legs == ["semantic", "keyword"]
    assert by_name["c"].legs == ["keyword"]


def test_raw_leg_scores_are_ignored() -> None:
    # A huge raw score at rank 2 must not beat rank 1: scales of the two legs are not comparable.
    legs = {"semantic": [hit("first", score=0.1), hit("second", score=99.0)]}
    assert names(fuse(legs, 10)) == ["first", "second"]


def test_sorted_descending_and_ties_keep_first_seen_order() -> None:
    legs = {"semantic": [hit("a"), hit("b")], "keyword": [hit("c"), hit("d")]}
    fused = fuse(legs, 10)
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    # a and c tie (rank 1), b and d tie (rank 2): a stable order, semantic leg first.
    assert names(fused) == ["a", "c", "b", "d"]


def test_limit_is_respected() -> None:
    legs = {"semantic": [hit(str(i)) for i in range(20)], "keyword": [hit(str(i)) for i in range(10, 30)]}
    assert len(fuse(legs, 5)) == 5
    assert len(fuse(legs, 100)) == 30  # every distinct chunk once
    assert fuse(legs, 0) == []


def test_empty_legs() -> None:
    assert fuse({}, 10) == []
    assert fuse({"semantic": [], "keyword": []}, 10) == []


def test_inputs_are_not_mutated_and_fields_are_copied() -> None:
    original = hit("a", score=0.9)
    (fused,) = fuse({"semantic": [original], "keyword": [original]}, 10)
    assert (original.score, original.legs) == (0.9, [])
    assert fused is not original
    assert (fused.chunk_id, fused.media_id, fused.title, fused.start_s, fused.end_s, fused.text) == (
        original.chunk_id,
        original.media_id,
        original.title,
        original.start_s,
        original.end_s,
        original.text,
    )


def test_filter_sql_keeps_access_scope_first_and_binds_every_value() -> None:
    params: dict[str, object] = {}
    scope = _filter_sql(SearchFilters(), params)
    assert scope  # never an unscoped query, even without filters

    media_ids = [uuid.uuid4()]
    after = datetime(2024, 1, 1, tzinfo=UTC)
    filtered: dict[str, object] = {}
    where = _filter_sql(SearchFilters(media_ids=media_ids, tags=["AI", "Music"], created_after=after), filtered)
    assert where.startswith(scope + " AND ")  # filters only narrow the caller's scope
    assert ":media_ids" in where and ":tags" in where and ":created_after" in where
    assert ":created_before" not in where and ":source_type" not in where
    assert {k: filtered[k] for k in ("media_ids", "tags", "created_after")} == {
        "media_ids": media_ids,
        "tags": ["ai", "music"],
        "created_after": after,
    }
    assert "AI" not in where and "Music" not in where  # values are bound, never spliced into SQL
