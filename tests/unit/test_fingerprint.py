"""Near-duplicate audio detection on chromaprint fingerprints (`nexus.media.fingerprint`).

Synthetic 32-bit sub-fingerprint sequences stand in for audio; real chromaprint encodings of them build the
`Fingerprint` objects, so `items()` decoding is exercised too. The key regression: only the first 120 s used to be
fingerprinted, so two episodes sharing a long opening (jingle, hold music) were flagged as duplicates.
"""

from __future__ import annotations

import itertools
import sys
import types

import chromaprint
import numpy as np
import pytest

from nexus.media import fingerprint as fp_mod
from nexus.media.fingerprint import (
    DUPLICATE_BER,
    FINGERPRINT_MAX_S,
    MAX_OFFSET_ITEMS,
    MIN_OVERLAP_FRACTION,
    Fingerprint,
    bit_error_rate,
    duration_window,
    is_near_duplicate,
)

ITEM_S = 0.1238  # chromaprint: one sub-fingerprint per ~0.124 s


def random_items(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)


def flip_bits(items: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A re-encode: each bit flipped independently with probability `rate`."""
    bits = np.random.default_rng(seed).random((len(items), 32)) < rate
    mask = (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    return items ^ mask


def make_fp(items: np.ndarray) -> Fingerprint:
    encoded = chromaprint.encode_fingerprint([int(x) for x in items], 1)
    return Fingerprint(round(len(items) * ITEM_S, 2), encoded.decode())


def test_encoding_round_trips_through_items() -> None:
    items = random_items(300, seed=1)
    assert np.array_equal(make_fp(items).items(), items)


# --- bit_error_rate ------------------------------------------------------------------------------------------


def test_identical_sequences_have_zero_ber() -> None:
    a = random_items(500, seed=2)
    assert bit_error_rate(a, a.copy()) == 0.0


@pytest.mark.parametrize("shift", [1, 37, 150])
def test_shifted_copy_is_found_at_its_alignment(shift: int) -> None:
    a = random_items(500, seed=3)
    lead_in = random_items(shift, seed=4)  # e.g. silence or an intro added in front
    assert bit_error_rate(a, np.concatenate([lead_in, a])) == 0.0
    assert bit_error_rate(np.concatenate([lead_in, a]), a) == 0.0
    assert bit_error_rate(a, a[shift:]) == 0.0  # the start cut off instead


def test_noisy_shifted_copy_has_ber_near_noise_rate() -> None:
    a = random_items(500, seed=5)
    b = flip_bits(np.concatenate([random_items(20, seed=6), a]), 0.01, seed=7)
    assert bit_error_rate(a, b) == pytest.approx(0.01, abs=0.005)


def test_unrelated_sequences_are_about_half_wrong() -> None:
    ber = bit_error_rate(random_items(500, seed=8), random_items(450, seed=9))
    assert 0.45 < ber <= 0.5  # best of many alignments is slightly below 0.5, never near a match
    assert ber > DUPLICATE_BER


def test_nothing_to_align_gives_one() -> None:
    empty = np.array([], dtype=np.uint32)
    assert bit_error_rate(empty, empty) == 1.0
    assert bit_error_rate(random_items(100, seed=10), empty) == 1.0
    assert bit_error_rate(empty, random_items(100, seed=10)) == 1.0


def test_partial_overlap_below_minimum_fraction_does_not_count() -> None:
    # b's first 60 items equal a's last 60 (a shift the search covers), but that is only 30 % of the shorter one:
    # an outro that is another recording's intro does not make the two the same.
    a = random_items(200, seed=11)
    b = np.concatenate([a[-60:], random_items(140, seed=12)])
    assert 200 - 60 <= MAX_OFFSET_ITEMS and 60 < MIN_OVERLAP_FRACTION * 200
    assert bit_error_rate(a, b) > DUPLICATE_BER


# --- duration_window -----------------------------------------------------------------------------------------

DURATIONS = [0.5, 1, 5, 10, 29.5, 30, 45, 60, 90, 120, 300, 599, 600, 1800, 3600, 7200, 14400]


def test_window_contains_the_duration_itself_and_is_non_negative() -> None:
    for d in DURATIONS:
        lo, hi = duration_window(d)
        assert 0.0 <= lo <= d <= hi


def test_window_rule_is_symmetric() -> None:
    """b may be a duplicate of a iff a may be a duplicate of b: the check must not depend on argument order."""

    def within(x: float, y: float) -> bool:
        lo, hi = duration_window(x)
        return lo <= y <= hi

    grid = [*DURATIONS, *(d * 1.5 + 30 for d in DURATIONS), *np.linspace(1, 5000, 211).tolist()]
    asymmetric = [(a, b) for a, b in itertools.product(grid, repeat=2) if within(a, b) != within(b, a)]
    assert asymmetric == []


def test_window_is_symmetric_at_its_own_edges() -> None:
    for d in DURATIONS:
        lo, hi = duration_window(d)
        lo_of_hi = duration_window(hi)[0]
        assert lo_of_hi == pytest.approx(d)  # the longest partner of d has d as its shortest partner
        if lo > 0:
            assert duration_window(lo)[1] == pytest.approx(d)


def test_window_excludes_much_longer_and_much_shorter_recordings() -> None:
    lo, hi = duration_window(3600)
    assert hi < 2 * 3600 and lo > 3600 / 2


# --- is_near_duplicate ---------------------------------------------------------------------------------------

N = 4000  # ~8 min of audio, so a 25 % shared opening is ~2 min: longer than the old 120 s cap


def test_reencode_is_a_near_duplicate_both_ways() -> None:
    a = random_items(N, seed=20)
    original, reencoded = make_fp(a), make_fp(flip_bits(a, 0.01, seed=21))
    dup, ber = is_near_duplicate(original, reencoded)
    assert dup and ber == pytest.approx(0.01, abs=0.005)
    assert is_near_duplicate(reencoded, original)[0]


def test_shared_long_opening_is_not_a_duplicate() -> None:
    """Regression: episodes with the same first ~2 minutes (a quarter) but different content afterwards."""
    opening = random_items(N // 4, seed=30)
    items1 = np.concatenate([opening, random_items(N - N // 4, seed=31)])
    items2 = np.concatenate([opening, random_items(N - N // 4, seed=32)])
    # What the old 120 s cap saw: identical openings, wrongly a duplicate.
    first_120s = int(120 / ITEM_S)
    assert len(opening) > first_120s
    assert is_near_duplicate(make_fp(items1[:first_120s]), make_fp(items2[:first_120s]))[0]
    # The whole recordings differ after the opening.
    dup, ber = is_near_duplicate(make_fp(items1), make_fp(items2))
    assert not dup
    assert ber > DUPLICATE_BER


def test_same_audio_with_short_lead_in_is_a_duplicate() -> None:
    a = random_items(N, seed=40)
    padded = np.concatenate([random_items(40, seed=41), flip_bits(a, 0.005, seed=42)])  # ~5 s intro added
    assert is_near_duplicate(make_fp(a), make_fp(padded))[0]


def test_durations_outside_the_window_short_circuit_without_decoding() -> None:
    # The encoded strings are garbage: decoding them would raise, so returning (False, 1.0) proves no decode.
    assert is_near_duplicate(Fingerprint(3600, "x"), Fingerprint(600, "y")) == (False, 1.0)
    assert is_near_duplicate(Fingerprint(0, "x"), Fingerprint(0, "y")) == (False, 1.0)
    assert is_near_duplicate(Fingerprint(10, "x"), Fingerprint(0, "y")) == (False, 1.0)


# --- whole-file fingerprinting -------------------------------------------------------------------------------


def test_fingerprint_max_covers_hours() -> None:
    assert FINGERPRINT_MAX_S >= 6 * 3600


def test_fingerprint_file_asks_for_the_whole_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls: list[dict] = []

    def fake_fingerprint_file(path: str, maxlength: int = 120, force_fpcalc: bool = False):
        calls.append({"path": path, "maxlength": maxlength, "force_fpcalc": force_fpcalc})
        return 4321.5, b"AQAAencoded"

    monkeypatch.setitem(sys.modules, "acoustid", types.SimpleNamespace(fingerprint_file=fake_fingerprint_file))
    result = fp_mod.fingerprint_file(tmp_path / "a.wav")
    assert result == Fingerprint(4321.5, "AQAAencoded")
    assert calls == [{"path": str(tmp_path / "a.wav"), "maxlength": FINGERPRINT_MAX_S, "force_fpcalc": False}]


@pytest.mark.parametrize("excerpt_items", [8, 24, 60])  # ~1 s, ~3 s, ~7.5 s of a ~30 s recording
def test_an_excerpt_of_a_recording_is_not_its_duplicate(excerpt_items: int) -> None:
    """A short clip cut from a longer recording matches it perfectly where they overlap, but it is another item:
    marking it a duplicate would silently skip its processing."""
    full = random_items(240, seed=51)
    excerpt = full[40 : 40 + excerpt_items].copy()
    assert bit_error_rate(full, excerpt) == 1.0
    assert bit_error_rate(excerpt, full) == 1.0
