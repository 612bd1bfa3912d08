"""`nexus ingest`, `media list`, `export` and `media retranscribe` against the live API, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.conftest import MakeAccount
from tests.harness import LiveServer
from tests.media_fixtures import MediaServer

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def _nexus(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nexus.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode()


async def test_ingest_wait_and_list(
    make_account: MakeAccount, live_api: LiveServer, clips: dict[str, Path], media_server: MediaServer
) -> None:
    me = await make_account()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_API_URL=live_api.url, NEXUS_API_KEY=me.token, COLUMNS="160")

    code, out = await _nexus(env, "ingest", str(clips["b_wav"]), "--title", "Bread by CLI", "--wait")
    assert code == 0, out
    assert "completed" in out and "Bread by CLI" in out and "tags:" in out
    for stage in ("extracting", "fingerprinting", "transcribing", "enriching", "embedding"):
        assert stage in out

    code, out = await _nexus(env, "ingest", f"{media_server.url}/a_64k.mp3", "--wait")
    assert code == 0 and "completed" in out, out

    code, out = await _nexus(env, "media", "list")
    assert code == 0 and "2 media item(s)" in out and "Bread by CLI" in out, out
    bread = next(UUID.search(line).group() for line in out.splitlines() if "Bread by CLI" in line)  # type: ignore[union-attr]

    code, out = await _nexus(env, "export", bread, "--format", "vtt")
    assert code == 0 and out.startswith("WEBVTT") and " --> " in out, out
    code, out = await _nexus(env, "export", bread, "--format", "doc")
    assert code == 1 and "HTTP 422" in out, out

    code, out = await _nexus(env, "media", "retranscribe", bread, "--term", "sourdough", "--wait")
    assert code == 0 and "the new transcript is in place" in out and "transcribing" in out, out

    code, out = await _nexus(env, "search", "sourdough flour")
    assert code == 0 and "Bread by CLI" in out and "keyword" in out, out

    code, out = await _nexus(env, "chat", "What do you need for sourdough?")
    assert code == 0 and "No generative model is configured" in out and "Bread by CLI" in out, out
    assert "conversation " in out

    code, out = await _nexus(env, "chat", "hello", "--provider", "gemini")
    assert code == 1 and "not configured" in out

    code, out = await _nexus(env, "ingest", str(clips["text"]))
    assert code == 1 and "HTTP 415" in out and "not a readable audio/video file" in out

    code, out = await _nexus(env, "ingest", "no-such-file.mp3")
    assert code == 1 and "neither an existing file nor a URL" in out

    env["NEXUS_API_KEY"] = "nx_00000000_wrong"
    code, out = await _nexus(env, "media", "list")
    assert code == 1 and "HTTP 401" in out
