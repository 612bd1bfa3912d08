"""Word-to-second lookup: a search hit or a citation points at the first word of the query that is spoken."""

from __future__ import annotations

from nexus.search.service import first_match_second, terms_of

WORDS = [
    ["The", 10.0, 10.2, 0.9],
    ["keeper", 10.2, 10.6, 0.9],
    ["counted", 10.6, 11.0, 0.9],
    ["seven", 11.0, 11.3, 0.9],
    ["ships,", 11.3, 11.7, 0.9],
    ["Estación", 12.0, 12.6, 0.9],
]


def test_the_first_spoken_query_word_is_found() -> None:
    assert first_match_second(WORDS, terms_of("How many ships did the keeper count?"), 10.0, 13.0) == 10.2
    assert first_match_second(WORDS, terms_of("ships"), 10.0, 13.0) == 11.3  # punctuation is not part of it
    assert first_match_second(WORDS, terms_of("estacion"), 10.0, 13.0) == 12.0  # accents and case folded
    assert first_match_second(WORDS, terms_of("counting"), 10.0, 13.0) is None  # no stemming beyond prefixes
    assert first_match_second(WORDS, terms_of("count"), 10.0, 13.0) == 10.6  # a word the term begins
    assert first_match_second(WORDS, terms_of("keeper"), 10.5, 13.0) is None  # outside the passage


def test_short_and_function_words_are_not_terms() -> None:
    assert terms_of("is it on the ship?") == {"ship"}
