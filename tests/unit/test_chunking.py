"""Transcript segments -> retrieval passages (`nexus.media.chunking`).

Passages are what search ranks and what chat cites with timestamps, so they must keep every word exactly once and
in order, never cut a segment in half, respect the word/duration budget, and carry the start of their first
segment and the end of their last one.
"""

from __future__ import annotations

import itertools
import random

from nexus.media.chunking import MAX_SECONDS, MAX_WORDS, Passage, chunk_segments


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def test_empty_input_gives_no_passages() -> None:
    assert chunk_segments([]) == []


def test_one_segment_is_one_passage_with_its_own_bounds() -> None:
    assert chunk_segments([(1.5, 4.0, "hello there")]) == [Passage(1.5, 4.0, "hello there")]


def test_word_budget_is_inclusive_and_splits_beyond_it() -> None:
    half = MAX_WORDS // 2
    # Two halves fill the budget exactly: one passage.
    exact = chunk_segments([(0, 1, words(half, "a")), (1, 2, words(MAX_WORDS - half, "b"))])
    assert len(exact) == 1
    # One word more than the budget: the second segment opens a new passage.
    over = chunk_segments([(0, 1, words(half, "a")), (1, 2, words(MAX_WORDS - half + 1, "b"))])
    assert [(p.start_s, p.end_s) for p in over] == [(0, 1), (1, 2)]


def test_duration_budget_splits_short_segments() -> None:
    # One word every 10 s: the word budget never binds, the 30 s window does.
    segments = [(10.0 * i, 10.0 * (i + 1), f"w{i}") for i in range(7)]
    passages = chunk_segments(segments)
    assert all(p.end_s - p.start_s <= MAX_SECONDS for p in passages)
    assert [(p.start_s, p.end_s) for p in passages] == [(0, 30), (30, 60), (60, 70)]


def test_duration_counts_from_first_start_including_gaps() -> None:
    # Only 2 s of speech, but 40 s apart: a passage spanning them would claim a 42 s stretch of the recording.
    passages = chunk_segments([(0.0, 1.0, "early"), (41.0, 42.0, "late")])
    assert [p.text for p in passages] == ["early", "late"]


def test_oversize_segment_is_kept_whole_and_alone() -> None:
    big = words(MAX_WORDS * 2, "big")
    passages = chunk_segments([(0, 2, "before it"), (2, 80, big), (80, 81, "after it")])
    assert [p.text for p in passages] == ["before it", big, "after it"]
    assert (passages[1].start_s, passages[1].end_s) == (2, 80)


def test_passages_cover_all_segments_in_order_with_first_and_last_bounds() -> None:
    rng = random.Random(7)
    segments, t = [], 0.0
    for i in range(200):
        dur = rng.uniform(0.5, 12.0)
        segments.append((t, t + dur, words(rng.randint(1, 25), f"s{i}w")))
        t += dur + rng.choice([0.0, 0.0, 3.0])
    passages = chunk_segments(segments)

    # Every segment lands whole in exactly one passage, in order: rebuild the partition from the tokens.
    seg_of = {tok: i for i, (_, _, text) in enumerate(segments) for tok in text.split()}
    flat: list[int] = []
    for p in passages:
        ids = sorted({seg_of[tok] for tok in p.text.split()})
        assert ids == list(range(ids[0], ids[-1] + 1))  # contiguous run of segments
        assert p.text == " ".join(segments[i][2] for i in ids)  # whole segments, original order
        assert (p.start_s, p.end_s) == (segments[ids[0]][0], segments[ids[-1]][1])
        flat.extend(ids)
        if len(ids) > 1:  # a multi-segment passage is within both budgets
            assert len(p.text.split()) <= MAX_WORDS
            assert p.end_s - p.start_s <= MAX_SECONDS
    assert flat == list(range(len(segments)))


def test_passages_are_greedy() -> None:
    """A passage only ends when the next segment would break a budget: no needlessly tiny passages."""
    rng = random.Random(11)
    segments = [(2.0 * i, 2.0 * i + 2.0, words(rng.randint(1, 20), f"s{i}w")) for i in range(100)]
    passages = chunk_segments(segments)
    for prev, nxt in itertools.pairwise(passages):
        first_next = next(s for s in segments if s[0] == nxt.start_s)
        too_many_words = len(prev.text.split()) + len(first_next[2].split()) > MAX_WORDS
        too_long = first_next[1] - prev.start_s > MAX_SECONDS
        assert too_many_words or too_long
