"""Near-duplicate audio detection on chromaprint fingerprints.

Fingerprints never hash-equal across a re-encode, so "duplicate" means a low bit error rate (BER) between the
two 32-bit sub-fingerprint sequences at the best alignment. Measured here: a 64 kbit/s MP3 re-encode is ~0.3 %,
the same audio shifted by 1 s of silence ~1.4 % at the right offset, unrelated speech >= 39 %; but two different
4 s clips in the same synthetic voice sharing a phrase came to 11.9 % (bench/uploads.py, 820 pairs: the next
lowest 19.5 %). The threshold sits well below that and far above any re-encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DUPLICATE_BER = 0.08
MAX_OFFSET_ITEMS = 485  # ~60 s of shift at ~0.124 s per sub-fingerprint (an added intro or lead-in of silence)
MIN_OVERLAP_ITEMS = 16
MIN_OVERLAP_FRACTION = 0.6  # of the *longer* fingerprint: a 3 s excerpt of a 30 s recording is not "the same"


@dataclass(frozen=True)
class Fingerprint:
    duration_s: float
    encoded: str  # chromaprint's compressed base64 form, stored in Postgres

    def items(self) -> np.ndarray:
        import chromaprint

        raw, _version = chromaprint.decode_fingerprint(self.encoded.encode())
        return np.asarray(raw, dtype=np.int64).astype(np.uint32)


FINGERPRINT_MAX_S = 24 * 3600
"""Fingerprint the whole recording: pyacoustid stops after 120 s by default, and two episodes that share a long
opening (a jingle, hold music) then look identical."""


def fingerprint_file(path: Path) -> Fingerprint:
    import acoustid

    # Library path; never force_fpcalc (chromaprint#137).
    duration, encoded = acoustid.fingerprint_file(str(path), maxlength=FINGERPRINT_MAX_S)
    return Fingerprint(float(duration), encoded.decode() if isinstance(encoded, bytes) else encoded)


def _popcount(x: np.ndarray) -> int:
    return int(np.unpackbits(x.view(np.uint8)).sum())


def bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Lowest BER over all alignments whose overlap covers most of both recordings; 1.0 when none does.

    The overlap is measured against the longer one: an excerpt, or an outro that is another recording's intro,
    matches perfectly where it overlaps, yet the two are different items and both must be processed."""
    shorter, longer = sorted((len(a), len(b)))
    need = max(min(MIN_OVERLAP_ITEMS, shorter), int(longer * MIN_OVERLAP_FRACTION))
    if need == 0 or need > shorter:
        return 1.0
    best = 1.0
    for offset in range(-min(MAX_OFFSET_ITEMS, len(b) - 1), min(MAX_OFFSET_ITEMS, len(a) - 1) + 1):
        a0, b0 = max(0, offset), max(0, -offset)
        n = min(len(a) - a0, len(b) - b0)
        if n < need:
            continue
        ber = _popcount(np.bitwise_xor(a[a0 : a0 + n], b[b0 : b0 + n])) / (32 * n)
        best = min(best, ber)
    return best


def duration_window(duration_s: float) -> tuple[float, float]:
    """Durations another recording can have and still be a near-duplicate of one this long: the same content
    with some silence or an intro/outro added, never a clip much shorter or longer."""
    slack = 0.5 * duration_s + 30
    return max(0.0, duration_s - slack / 1.5), duration_s + slack


def is_near_duplicate(a: Fingerprint, b: Fingerprint) -> tuple[bool, float]:
    lo, hi = duration_window(a.duration_s)
    if min(a.duration_s, b.duration_s) <= 0 or not lo <= b.duration_s <= hi:
        return False, 1.0
    ber = bit_error_rate(a.items(), b.items())
    return ber <= DUPLICATE_BER, ber
