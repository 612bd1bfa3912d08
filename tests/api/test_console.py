"""The web console's serving and the player's media routes: each page path answers with the app, the API keeps its
own 404/405, and the player's files stream with HTTP Range requests to their owner only."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.app import create_app
from models import MediaItem, SourceType
from nexus.core.db import session_scope
from nexus.core.settings import Settings
from nexus.identity.service import personal_workspace
from nexus.media.repository import media_prefix
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


def console_client(web_dir: Path) -> httpx.AsyncClient:
    app = create_app(Settings(web_dir=web_dir))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")


async def test_every_page_path_serves_the_app_and_the_api_keeps_its_errors(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Nexus</title><div id=root></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not an asset")
    async with console_client(tmp_path) as web:
        for path in ("/", "/library", "/media/0b7c", "/jobs/1", "/chat", "/chat/42", "/operator", "/signin"):
            page = await web.get(path)
            assert page.status_code == 200 and "id=root" in page.text, path
            assert page.headers["cache-control"] == "no-cache"
            csp = page.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "media-src 'self' blob:" in csp and "frame-ancestors 'none'" in csp
        asset = await web.get("/assets/index-abc123.js")
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        for escape in ("/assets/..%2Fsecret.txt", "/assets/.hidden", "/assets/missing.js"):
            assert (await web.get(escape)).status_code == 404, escape
        # The API's own answers are untouched: unknown API paths are JSON 404s, a wrong method a 405.
        unknown = await web.get("/api/nothing-here")
        assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
        assert (await web.put("/api/media")).status_code == 405
        assert (await web.post("/library")).status_code == 405


async def test_an_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    async with console_client(tmp_path / "nothing") as web:
        page = await web.get("/")
    assert page.status_code == 503 and "make web" in page.text


async def test_the_player_streams_ranges_of_the_owners_audio_only(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    async with session_scope(runtime.engine) as session:
        ws = await personal_workspace(session, owner.user)
        media = MediaItem(owner_id=owner.user.id, workspace_id=ws.id, source_type=SourceType.file)
        media.audio_key = f"{media_prefix(owner.user.id, media.id)}/audio.wav"
        media.original_key = f"{media_prefix(owner.user.id, media.id)}/original.mp4"
        session.add(media)
        pending = MediaItem(owner_id=owner.user.id, workspace_id=ws.id, source_type=SourceType.file)
        session.add(pending)
    audio = bytes(range(256)) * 4096  # 1 MiB
    runtime.store.put_bytes(media.audio_key, audio)
    runtime.store.put_bytes(media.original_key, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)

    url = f"/api/media/{media.id}/audio"
    whole = await api.get(url, headers=owner.headers)
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    # Seeking an hour in: only the bytes asked for travel.
    part = await api.get(url, headers={**owner.headers, "Range": "bytes=500000-500099"})
    assert part.status_code == 206 and part.content == audio[500000:500100]
    assert part.headers["content-range"] == f"bytes 500000-500099/{len(audio)}"
    tail = await api.get(url, headers={**owner.headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == audio[-10:]
    beyond = await api.get(url, headers={**owner.headers, "Range": f"bytes={len(audio) + 5}-"})
    assert beyond.status_code == 416

    video = await api.get(f"/api/media/{media.id}/original", headers=owner.headers)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"

    assert (await api.get(url, headers=other.headers)).status_code == 404
    assert (await api.get(url)).status_code == 401
    missing = await api.get(f"/api/media/{pending.id}/audio", headers=owner.headers)
    assert missing.status_code == 404 and "still being converted" in missing.json()["detail"]
