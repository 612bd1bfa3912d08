"""Cancelling an activity stops the blocking work under it (hardening item 8): the thread is told to stop and
awaited, ffmpeg is killed, Whisper ends at the next segment, and a download ends at its next chunk."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from nexus.core.settings import Settings
from nexus.core.stopping import Stopped, StopToken, run_stoppable
from nexus.media import fetch


async def test_cancelling_the_caller_stops_the_thread_and_waits_for_it() -> None:
    finished = threading.Event()

    def work(stop: StopToken) -> None:
        try:
            while True:
                stop.check()
                time.sleep(0.01)
        finally:
            finished.set()

    task = asyncio.create_task(run_stoppable(work))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the work had ended before the cancellation went on


async def test_the_result_comes_back_when_nothing_is_cancelled() -> None:
    assert await run_stoppable(lambda stop: 42) == 42


def ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process(os.getpid()).children(recursive=True) if p.name() == "ffmpeg"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_a_cancelled_conversion_kills_ffmpeg(tmp_path: Path) -> None:
    never = tmp_path / "stalled.wav"
    os.mkfifo(never)  # ffmpeg waits on it forever, like a conversion of an endless or very long input
    task = asyncio.create_task(run_stoppable(lambda stop: fetch.to_speech_wav(never, tmp_path / "out.wav", stop)))
    async with asyncio.timeout(10):
        while not ffmpeg_children():
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert ffmpeg_children() == []


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_transcription_ends_at_the_next_segment_once_stopped(tmp_path: Path) -> None:
    from nexus.media.transcribe import transcribe

    speech = tmp_path / "speech.wav"
    sentences = [
        "The first episode covers the history of the archive.",
        "Then we talk about how recordings are stored for many years.",
        "After a short break the guests discuss search and retrieval.",
        "Finally the host thanks everyone and announces the next topic.",
    ]
    text = " ... ".join(sentences * 3)  # pauses between sentences: several segments
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(speech), text], check=True)
    stop = StopToken()
    seen: list[float] = []

    def progress(done: float, _total: float) -> None:
        seen.append(done)
        stop.stop()  # cancelled while the first segment was being reported

    settings = Settings(data_dir=tmp_path)
    with pytest.raises(Stopped):
        transcribe(settings, speech, progress, stop)
    assert len(seen) == 1  # nothing was transcribed after the stop


def test_a_download_ends_at_its_next_chunk_once_stopped(tmp_path: Path) -> None:
    """A stopped token is honoured by the progress hook: the download raises Stopped, not a download error."""
    import http.server
    import socketserver

    body = os.urandom(4 * 1024 * 1024)

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 64 * 1024):
                self.wfile.write(body[i : i + 64 * 1024])
                time.sleep(0.02)

        def log_message(self, *args: object) -> None:
            pass

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stop = StopToken()
        progressed: list[int] = []

        def on_progress(done: int, _total: int | None) -> None:
            progressed.append(done)
            if done > 256 * 1024:
                stop.stop()

        url = f"http://127.0.0.1:{server.server_address[1]}/long.mp3"
        with pytest.raises(Stopped):
            fetch.download(url, tmp_path, max_bytes=10**8, allow_private=True, on_progress=on_progress, stop=stop)
        server.shutdown()
    assert progressed and max(progressed) < len(body)
