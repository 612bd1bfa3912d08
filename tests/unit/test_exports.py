"""Transcript exports: cues follow word timings, speakers by name, formats as players read them."""

from __future__ import annotations

from nexus.media.exports import MAX_CUE_CHARS, Line, cues, srt, txt, vtt

WORDS = [[w, i * 0.5, i * 0.5 + 0.4, 0.9] for i, w in enumerate("the quick brown fox jumps over the lazy dog".split())]


def test_a_segment_without_word_timings_is_one_cue() -> None:
    [cue] = cues([Line(1.0, 3.5, "Corrected text.", "Ada")])
    assert (cue.start, cue.end, cue.text, cue.speaker) == (1.0, 3.5, "Corrected text.", "Ada")


def test_long_segments_are_cut_at_words_with_their_own_times() -> None:
    long = [[f"word{i:02d}", i * 0.3, i * 0.3 + 0.25, 0.9] for i in range(60)]
    found = cues([Line(0.0, 18.0, " ".join(str(w[0]) for w in long), "S1", words=long)])
    assert len(found) > 2 and all(len(c.text) <= MAX_CUE_CHARS and c.end - c.start <= 7.0 for c in found)
    assert " ".join(c.text for c in found) == " ".join(str(w[0]) for w in long)  # nothing lost or repeated
    assert found[1].start == long[len(found[0].text.split())][1]  # the next cue starts at its first word


def test_srt_and_vtt_shapes() -> None:
    lines = [Line(0.0, 4.4, "the quick brown fox jumps over the lazy dog", "Ada <CEO>", words=WORDS)]
    assert srt(lines) == "1\n00:00:00,000 --> 00:00:04,400\nAda <CEO>: the quick brown fox jumps over the lazy dog\n"
    assert vtt(lines).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:04.400\n<v Ada &lt;CEO&gt;>the quick")
    assert srt([Line(3725.5, 3726.0, "late")]).splitlines()[1] == "01:02:05,500 --> 01:02:06,000"


def test_text_shows_time_speaker_and_translation() -> None:
    lines = [Line(65.2, 70.0, "Hola.", "S2", "es", "Hello.")]
    assert txt(lines) == "[00:01:05] S2: Hola.\n           (en) Hello.\n"
    assert txt([]) == ""


def test_words_of_a_language_written_without_spaces_are_joined_without_them() -> None:
    words = [["今日は", 0.0, 0.5, 0.9], ["晴れ", 0.5, 0.9, 0.9], ["です", 0.9, 1.2, 0.9]]
    [cue] = cues([Line(0.0, 1.2, "今日は晴れです", language="ja", words=words)])
    assert cue.text == "今日は晴れです"
