"""Citations and the provider-independent prompt/parsing helpers.

Covers `nexus.chat.generation.citations_for` (which passages an answer is shown with) and the pure parts of
`nexus.llm.providers`: the prompt every provider gets (`chat_messages`), tag cleaning, enrichment JSON parsing,
HTTP status classification, and the offline extractive provider, which needs no model when given a fake embedder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nexus.chat.generation import citations_for
from nexus.llm.providers import (
    CHAT_SYSTEM,
    ChatContext,
    ExtractiveProvider,
    Passage,
    ProviderError,
    Usage,
    _clock,
    _shorten,
    _status_retryable,
    chat_messages,
    clean_tags,
)


def passages(n: int) -> list[Passage]:
    return [
        Passage(media_id=f"m{i}", title=f"T{i}", start=10.0 * i, end=10.0 * i + 5, text=f"p{i}")
        for i in range(1, n + 1)
    ]


def cited(answer: str, given: list[Passage]) -> list[str]:
    return [c["media_id"] for c in citations_for(answer, given)]


# --- citations_for -------------------------------------------------------------------------------------------


def test_explicit_citations_pick_those_passages_in_passage_order() -> None:
    assert cited("As said in [3], and before that [1].", passages(4)) == ["m1", "m3"]


def test_each_citation_carries_the_number_the_answer_gave_it() -> None:
    """A client labelled the sources [1], [2] by their place in the list: an answer citing [2] and [4] sent the
    user to passage 4 for its "[2]"."""
    assert [c["n"] for c in citations_for("See [2] and [4].", passages(4))] == [2, 4]
    assert [c["n"] for c in citations_for("No references.", passages(3))] == [1, 2, 3]


def test_no_citation_means_every_passage() -> None:
    assert cited("An answer without references.", passages(3)) == ["m1", "m2", "m3"]


def test_out_of_range_citation_counts_as_none() -> None:
    assert cited("See [7].", passages(3)) == ["m1", "m2", "m3"]


def test_two_digit_citation_is_not_mistaken_for_one_digit() -> None:
    assert cited("Only [12] matters.", passages(12)) == ["m12"]


def test_citation_fields_and_snippet_truncation() -> None:
    long = Passage(media_id="m", title=None, start=1.5, end=9.0, text="x" * 1000)
    (c,) = citations_for("[1]", [long])
    assert c == {
        "n": 1,
        "media_id": "m",
        "title": None,
        "start": 1.5,
        "end": 9.0,
        "at": 1.5,
        "speaker": None,
        "snippet": "x" * 300,
    }
    spoken = Passage(media_id="m", start=1.5, end=9.0, text="x", at=4.2)
    assert citations_for("[1]", [spoken])[0]["at"] == 4.2  # the first word of the question, when one is spoken
    assert citations_for("[1]", [Passage(media_id="m", start=0, end=1, text="short")])[0]["snippet"] == "short"


def test_no_passages_no_citations() -> None:
    assert citations_for("[1] something", []) == []


# --- prompt --------------------------------------------------------------------------------------------------


def test_chat_messages_orders_system_history_question() -> None:
    history = [{"role": "user", "content": "earlier q"}, {"role": "assistant", "content": "earlier a"}]
    ctx = ChatContext(
        question="What about cats?",
        instruction="Be brief.",
        memories=["likes cats", "lives in Oslo"],
        passages=[Passage(media_id="m", title=None, start=65, end=3725, text="cats purr")],
        history=history,
    )
    messages = chat_messages(ctx)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == history
    assert messages[-1] == {"role": "user", "content": "What about cats?"}
    system = messages[0]["content"]
    assert system.startswith(CHAT_SYSTEM)
    assert "Persona instruction: Be brief." in system
    assert "- likes cats\n- lives in Oslo" in system
    assert "[1] (untitled, 1:05-62:05) cats purr" in system


def test_chat_messages_minimal_and_with_draft() -> None:
    (system, user) = chat_messages(ChatContext(question="Hi?"))
    assert system == {"role": "system", "content": CHAT_SYSTEM}
    assert user == {"role": "user", "content": "Hi?"}
    last = chat_messages(ChatContext(question="Hi?", draft="Hello."))[-1]["content"]
    assert last.startswith("Hi?") and last.endswith("improve it:\nHello.")


def test_clock_and_shorten() -> None:
    assert [_clock(s) for s in (0, 9.9, 60, 61.5, 3600)] == ["0:00", "0:09", "1:00", "1:01", "60:00"]
    assert _shorten("A short sentence.", 80) == "A short sentence"
    cut = _shorten("one two three four five six", 12)
    assert cut == "one two…" and len(cut) <= 13


# --- tags, parsing, errors -----------------------------------------------------------------------------------


def test_clean_tags_normalises_dedupes_and_caps() -> None:
    raw = ["  Machine   Learning ", "#AI", "ai", "", "   ", "x" * 50, *[f"t{i}" for i in range(10)]]
    tags = clean_tags(raw)
    assert tags[:3] == ["machine learning", "ai", "x" * 40]
    assert len(tags) == 8
    assert len(set(tags)) == len(tags)


def test_clean_tags_strips_space_after_hash() -> None:
    assert clean_tags(["python", "# Python"]) == ["python"]


def test_status_classification() -> None:
    """Server trouble, timeouts, conflicts and rate limits are worth retrying; other client errors never are."""
    assert [s for s in (500, 502, 503, 408, 409, 429) if not _status_retryable(s)] == []
    assert [s for s in (400, 401, 403, 404, 422) if _status_retryable(s)] == []


class FakeEmbedder:
    """Bag-of-keywords vectors: deterministic, instant, and enough to tell topics apart."""

    model_name = "fake-embedder"
    VOCAB = ("cat", "purr", "tax", "law")

    def embed(self, texts: list[str]) -> np.ndarray:
        vecs = np.array([[t.lower().count(w) for w in self.VOCAB] + [0.1] for t in texts], dtype=float)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_parse_valid_enrichment_cleans_tags() -> None:
    provider = ExtractiveProvider(FakeEmbedder())  # type: ignore[arg-type]
    raw = json.dumps({"title": "Cats", "summary": "About cats.", "tags": ["#Cats", "cats", "Pets"]})
    e = provider._parse(raw, "")
    assert (e.title, e.summary, e.tags) == ("Cats", "About cats.", ["cats", "pets"])
    assert (e.provider, e.model) == ("extractive", "fake-embedder")


@pytest.mark.parametrize("raw", ["not json", '{"title": "x"}', '{"summary": "s", "tags": "not-a-list"}', ""])
def test_parse_malformed_enrichment_is_retryable(raw: str) -> None:
    with pytest.raises(ProviderError) as info:
        ExtractiveProvider(FakeEmbedder())._parse(raw, "")  # type: ignore[arg-type]
    assert info.value.retryable is True


# --- offline extractive provider -----------------------------------------------------------------------------


def test_extractive_summary_is_the_central_sentences_in_order() -> None:
    transcript = "My cat likes to purr. The tax law changed. Another cat sat down. Every cat can purr loudly."
    e = ExtractiveProvider(FakeEmbedder())._enrich(transcript)  # type: ignore[arg-type]
    assert e.summary == "My cat likes to purr. Another cat sat down. Every cat can purr loudly."
    assert e.title is not None and "tax" not in e.title
    assert e.tags == clean_tags(e.tags) and 1 <= len(e.tags) <= 8


def test_extractive_empty_transcript() -> None:
    e = ExtractiveProvider(FakeEmbedder())._enrich("  ")  # type: ignore[arg-type]
    assert (e.title, e.summary, e.tags) == (None, "", [])


async def answer(ctx: ChatContext) -> str:
    provider = ExtractiveProvider(FakeEmbedder())  # type: ignore[arg-type]
    return "".join([t async for t in provider.stream_answer(ctx, Usage())])


async def test_extractive_answer_quotes_top_three_and_cites_them() -> None:
    given = passages(5)
    text = await answer(ChatContext(question="q", passages=given, memories=["likes tea"]))
    assert "No generative model is configured" in text
    assert '[1] "p1" (T1, 0:10-0:15)' in text and '[3] "p3"' in text and "[4]" not in text
    assert "- likes tea" in text
    assert cited(text, given) == ["m1", "m2", "m3"]


async def test_extractive_answer_without_passages_says_so() -> None:
    assert "nothing in your archive matches" in await answer(ChatContext(question="q"))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Both say so [1, 2].", ["m1", "m2"]),
        ("See [1; 3].", ["m1", "m3"]),
        ("Covered in [2-4].", ["m2", "m3", "m4"]),
        ("Covered in [2\u20133] and [5].", ["m2", "m3", "m5"]),
        ("A year [2026] is not a passage.", ["m1", "m2", "m3", "m4", "m5"]),
    ],
)
def test_grouped_and_ranged_citations(answer: str, expected: list[str]) -> None:
    """Models group citations as [1, 2] or [2-4]: each passage in the group is cited, not none of them."""
    assert cited(answer, passages(5)) == expected
