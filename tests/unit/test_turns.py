"""What enrichment reads of a transcript, and which proposed speaker names are kept."""

from __future__ import annotations

from nexus.llm.providers import speaker_suggestions
from nexus.media.chunking import passages_of, turns_text


def test_unlabelled_speech_is_just_the_words() -> None:
    assert turns_text([(None, "Hello there."), (None, "How are you?")]) == "Hello there. How are you?"


def test_labelled_speech_is_a_line_per_turn() -> None:
    segments = [("S1", "Hi, I am Ada."), ("S1", "I called before."), ("S2", "Welcome back."), ("S1", "Thanks.")]
    assert turns_text(segments) == "S1: Hi, I am Ada. I called before.\nS2: Welcome back.\nS1: Thanks."


def test_only_names_for_labels_the_transcript_has_are_kept() -> None:
    transcript = "S1: Hi, I am Ada.\nS2: Welcome back, Ada."
    proposed = {"S1": "  Ada   Lovelace ", "S2": "", "S3": "Ghost", "speaker 1": "x"}
    assert speaker_suggestions(proposed, transcript) == {"S1": "Ada Lovelace"}
    assert speaker_suggestions({"S1": "Ada"}, "no labels here") == {}


def test_translations_are_a_second_track_at_the_same_seconds() -> None:
    passages = passages_of([(0.0, 4.0, "Hello.", None), (4.0, 9.0, "Hola, amigos.", "Hello, friends.")])
    assert [(p.track, p.text, p.start_s) for p in passages] == [
        ("transcript", "Hello. Hola, amigos.", 0.0),
        ("translation", "Hello, friends.", 4.0),
    ]
