"""What a user reads when their file cannot be read (`nexus.media.fetch.probe` and `to_speech_wav`).

ffprobe and ffmpeg explain failures in their own terms: the server's temp path (`/tmp/nexus-upload-…/original.mp3:
Invalid argument`) and internals (`buffer @ 0x55d5… Value inf for parameter 'time_base'`). Those belong in the log;
the user gets what is wrong with the file.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nexus.core.errors import BadInput
from nexus.media import fetch

LEAKS = re.compile(r"/tmp|nexus-upload|original\.mp3|@ 0x|0x[0-9a-f]{6,}|time_base|Invalid argument")

FFMPEG_STDERR = (
    "[buffer @ 0x55d5c3a1b2c0] Value inf for parameter 'time_base' out of range [0 - 2.14748e+09]\n"
    "[abuffer @ 0x55d5c3a1b2c0] Error applying options to the filter.\n"
    "/tmp/nexus-upload-8f2k1/original.mp3: Invalid argument\n"
)


def fake_run(monkeypatch: pytest.MonkeyPatch, returncode: int, stderr: str, stdout: str = "") -> None:
    def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, returncode, stdout=stdout, stderr=stderr)

    monkeypatch.setattr(fetch.subprocess, "run", run)


def assert_plain(message: str) -> None:
    assert not LEAKS.search(message), message


def test_probe_failure_says_what_is_wrong_and_logs_the_details(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_run(monkeypatch, 1, FFMPEG_STDERR)
    with caplog.at_level(logging.INFO, logger=fetch.__name__), pytest.raises(BadInput) as caught:
        fetch.probe(Path("/tmp/nexus-upload-8f2k1/original.mp3"))
    message = str(caught.value)
    assert "not a readable audio/video file" in message and "corrupt" in message
    assert_plain(message)
    assert "Value inf for parameter 'time_base'" in caplog.text and "/tmp/nexus-upload-8f2k1" in caplog.text


def test_conversion_failure_says_what_is_wrong_and_logs_the_details(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    fake_run(monkeypatch, 1, FFMPEG_STDERR)
    with caplog.at_level(logging.INFO, logger=fetch.__name__), pytest.raises(BadInput) as caught:
        fetch.to_speech_wav(tmp_path / "original.mp3", tmp_path / "audio.wav")
    message = str(caught.value)
    assert message.startswith("could not decode the audio") and "damaged" in message
    assert_plain(message)
    assert "buffer @ 0x55d5c3a1b2c0" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_conversion_without_samples_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_run(monkeypatch, 0, "")
    dest = tmp_path / "audio.wav"
    dest.write_bytes(b"RIFF" + bytes(40))  # a header and nothing after it
    with pytest.raises(BadInput, match="holds no sound") as caught:
        fetch.to_speech_wav(tmp_path / "original.mp3", dest)
    assert_plain(str(caught.value))


needs_ffmpeg = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")), reason="needs ffmpeg")


@needs_ffmpeg
def test_real_ffprobe_on_text_names_no_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "nexus-upload-x" / "original.mp3"
    src.parent.mkdir()
    src.write_text("these are meeting notes, not audio\n" * 50)
    with caplog.at_level(logging.INFO, logger=fetch.__name__), pytest.raises(BadInput) as caught:
        fetch.probe(src)
    assert "not a readable audio/video file" in str(caught.value)
    assert str(tmp_path) not in str(caught.value) and str(tmp_path) in caplog.text


@needs_ffmpeg
def test_real_ffmpeg_on_garbage_names_no_path(tmp_path: Path) -> None:
    src = tmp_path / "nexus-upload-x" / "original.mp3"
    src.parent.mkdir()
    src.write_bytes(b"\xff\xfb\x90\x00" + bytes(range(256)) * 8)  # an MP3 frame header, then noise
    with pytest.raises(BadInput, match="could not decode the audio") as caught:
        fetch.to_speech_wav(src, tmp_path / "audio.wav")
    assert_plain(str(caught.value))
    assert str(tmp_path) not in str(caught.value)


@needs_ffmpeg
async def test_upload_probe_runs_without_a_thread_and_says_what_is_wrong(tmp_path: Path) -> None:
    src = tmp_path / "nexus-upload-y" / "original.mp3"
    src.parent.mkdir()
    src.write_text("not audio\n" * 50)
    with pytest.raises(BadInput) as caught:
        await fetch.validate_upload(src, max_bytes=10**6, max_minutes=10)
    assert "not a readable audio/video file" in str(caught.value)
    assert_plain(str(caught.value))


async def test_a_prober_that_hangs_is_killed_at_the_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A hostile file that keeps ffprobe busy costs the API `timeout_s`, then the process is gone."""
    import asyncio
    import time

    spawned: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def stuck(*_args: str, **kwargs: object) -> asyncio.subprocess.Process:
        proc = await real_exec("sleep", "60", **kwargs)  # type: ignore[arg-type]
        spawned.append(proc)
        return proc

    monkeypatch.setattr(fetch.asyncio, "create_subprocess_exec", stuck)
    started = time.monotonic()
    with pytest.raises(BadInput, match="took longer than 1 s"):
        await fetch.probe_async(tmp_path / "x.mp3", timeout_s=1.0)
    assert time.monotonic() - started < 5
    assert spawned and spawned[0].returncode is not None  # killed and reaped, not left running
