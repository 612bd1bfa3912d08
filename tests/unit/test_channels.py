"""`read_channel`: one channel of a multichannel WAV, read in blocks (only that channel is whole in memory)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from nexus.media import transcribe


def test_each_channel_is_read_whole_and_apart_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcribe, "CHANNEL_BLOCK_FRAMES", 1000)  # 3 full blocks and a partial one
    frames = 3500
    rng = np.random.default_rng(3)
    channels = rng.integers(-32768, 32767, size=(frames, 3), dtype=np.int16)
    path = tmp_path / "three.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(3)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(channels.tobytes())
    assert transcribe.channel_count(path) == 3
    for i in range(3):
        got = transcribe.read_channel(path, i)
        assert got.dtype == np.float32 and len(got) == frames
        np.testing.assert_array_equal(got, channels[:, i].astype(np.float32) / 32768.0)
