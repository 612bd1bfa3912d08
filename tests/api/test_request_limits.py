"""Request limits hold while the body streams in (hardening items 6, 15, 16): an oversized upload is refused at
the limit, not after it is on disk; JSON bodies are bounded; uploads beyond capacity get 429 at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from api.app import create_app
from models import MediaItem, MediaJob, MediaStatus, SourceType
from nexus.core.db import session_scope
from nexus.identity.service import personal_workspace
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden

CHUNK = 64 * 1024
Receive = Callable[[], Awaitable[dict]]


async def call(app: object, path: str, receive: Receive, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """One request straight through the ASGI app, with the body supplied by `receive`."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[operator]
    return sent


def status_of(sent: list[dict]) -> int:
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def app_for(runtime: Runtime) -> object:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    return app


MULTIPART = [(b"content-type", b"multipart/form-data; boundary=xyz")]
PART_HEAD = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n'
)


async def test_an_oversized_upload_is_refused_as_soon_as_it_crosses_the_limit(runtime: Runtime) -> None:
    total = 4 * 1024 * 1024
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        body = PART_HEAD if pulled == 0 else b"x" * CHUNK
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < total}

    with overridden(runtime.settings, max_media_mb=0.5):  # limit: 0.5 MB + 1 MB of multipart overhead
        sent = await call(app_for(runtime), "/api/media/upload", receive, MULTIPART)
    assert status_of(sent) == 413
    assert b"NEXUS_MAX_MEDIA_MB" in b"".join(m.get("body", b"") for m in sent)
    assert pulled <= 1.5 * 1024 * 1024 + CHUNK, pulled  # stopped at the limit: the rest was never read


async def test_a_declared_length_over_the_limit_is_refused_before_reading(runtime: Runtime) -> None:
    async def receive() -> dict:
        raise AssertionError("the body must not be read")

    with overridden(runtime.settings, max_media_mb=0.5):
        headers = [*MULTIPART, (b"content-length", str(50 * 1024 * 1024).encode())]
        sent = await call(app_for(runtime), "/api/media/upload", receive, headers)
    assert status_of(sent) == 413


async def test_json_bodies_are_bounded(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    huge = {"query": "x" * (2 * 1024 * 1024)}
    resp = await api.post("/api/search", json=huge, headers=account.headers)
    assert resp.status_code == 413 and "NEXUS_MAX_REQUEST_KB" in resp.json()["detail"]


async def test_uploads_beyond_capacity_get_429_with_retry_after(runtime: Runtime) -> None:
    app = app_for(runtime)
    release = asyncio.Event()

    async def slow() -> dict:  # a client still sending its file
        await release.wait()
        return {"type": "http.disconnect"}

    async def empty() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    with overridden(runtime.settings, max_concurrent_uploads=1):
        first = asyncio.create_task(call(app, "/api/media/upload", slow, MULTIPART))
        await asyncio.sleep(0.2)
        sent = await call(app, "/api/media/upload", empty, MULTIPART)
        assert status_of(sent) == 429
        assert (b"retry-after", b"5") in sent[0]["headers"]
        release.set()
        await asyncio.wait_for(first, 10)
        # The slot is free again: the next upload gets past the gate (and fails on what it is, not on capacity).
        assert status_of(await call(app, "/api/media/upload", empty, MULTIPART)) != 429


async def test_a_user_past_their_limit_of_jobs_in_flight_gets_429_and_nothing_is_kept(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount, clips: dict[str, Path]
) -> None:
    me, other = await make_account(), await make_account()
    jobs: list[MediaJob] = []
    async with session_scope(runtime.engine) as session:  # two jobs mid-run, as the pipeline leaves them; one failed
        workspace = await personal_workspace(session, me.user)
        for stage in (MediaStatus.transcribing, MediaStatus.transcribing, MediaStatus.failed):
            media = MediaItem(
                owner_id=me.user.id, workspace_id=workspace.id, source_type=SourceType.url, source_url="http://x/"
            )
            session.add(media)
            await session.flush()
            jobs.append(
                MediaJob(
                    media_id=media.id,
                    owner_id=me.user.id,
                    workspace_id=workspace.id,
                    workflow_id=f"media-{media.id}",
                    stage=stage,
                )
            )
            session.add(jobs[-1])
    with overridden(runtime.settings, max_inflight_per_user=2), clips["b_wav"].open("rb") as fh:
        refused = await api.post("/api/media/upload", files={"file": ("b.wav", fh)}, headers=me.headers)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        assert "limit is 2" in refused.json()["detail"] and "NEXUS_MAX_INFLIGHT_PER_USER" in refused.json()["detail"]
        fh.seek(0)  # the limit is per user: someone else's upload goes through
        accepted = await api.post("/api/media/upload", files={"file": ("b.wav", fh)}, headers=other.headers)
        assert accepted.status_code == 202, accepted.text
        # A retry is new work in flight too (it skipped the limit: a user could requeue every failed job at once).
        retried = await api.post(f"/api/jobs/{jobs[2].id}/retry", headers=me.headers)
        assert retried.status_code == 429 and "limit is 2" in retried.json()["detail"]
        job = (await api.get(f"/api/jobs/{jobs[2].id}", headers=me.headers)).json()
        assert job["stage"] == "failed"  # as it was
    listed = (await api.get("/api/media", headers=me.headers)).json()
    assert listed["total"] == 3  # the refused upload left no row...
    assert not list(runtime.store.list_objects(f"users/{me.user.id}"))  # ...and no stored file
