"""One user can never read, follow, change or delete another user's media and jobs, on any endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import MakeAccount
from tests.e2e.test_media_pipeline import ingest_upload
from tests.harness import LiveServer


async def test_websocket_streams_the_same_ordered_events(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], live_api: LiveServer
) -> None:
    me = await make_account()
    submitted, sse_events = await ingest_upload(api, me.headers, clips["c_webm"], source="mic")
    ws_url = live_api.url.replace("http://", "ws://") + f"/ws/status/{submitted['job_id']}"
    received = []
    async with connect(ws_url, additional_headers=me.headers) as ws:
        async for message in ws:
            received.append(json.loads(message))
    assert received == sse_events  # replayed from the start, in order, ending with the terminal event
    assert received[-1]["stage"] == "completed" and received[-1]["terminal"]

    async with connect(f"{ws_url}?token={me.token}") as ws:  # browsers authenticate with a query parameter
        assert json.loads(await ws.recv())["stage"] == "pending"


async def test_every_media_and_job_endpoint_is_scoped_to_its_owner(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], live_api: LiveServer
) -> None:
    alice, bob = await make_account(), await make_account()
    submitted, events = await ingest_upload(api, alice.headers, clips["c_webm"], title="Alice's note")
    assert events[-1]["stage"] == "completed"
    media_id, job_id = submitted["media_id"], submitted["job_id"]

    for method, path in [
        ("GET", f"/api/media/{media_id}"),
        ("DELETE", f"/api/media/{media_id}"),
        ("GET", f"/api/jobs/{job_id}"),
        ("GET", f"/api/jobs/{job_id}/events"),
        ("POST", f"/api/jobs/{job_id}/retry"),
        ("POST", f"/api/jobs/{job_id}/cancel"),
    ]:
        resp = await api.request(method, path, headers=bob.headers)
        assert resp.status_code == 404, (method, path, resp.status_code)
        unauth = await api.request(method, path)
        assert unauth.status_code == 401, (method, path)

    listing = (await api.get("/api/media", params={"q": "Alice"}, headers=bob.headers)).json()
    assert listing["total"] == 0 and listing["items"] == []

    ws_url = live_api.url.replace("http://", "ws://") + f"/ws/status/{job_id}"
    # Refusals are close codes a client can act on: 4404 (not yours: indistinguishable from missing), 4401 (no key).
    for headers, code in ((bob.headers, 4404), ({}, 4401)):
        async with connect(ws_url, additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code

    # Alice's item is untouched and still hers.
    mine = (await api.get("/api/media", params={"q": "alice"}, headers=alice.headers)).json()
    assert [m["id"] for m in mine["items"]] == [media_id]
    assert (await api.get(f"/api/media/{media_id}", headers=alice.headers)).json()["status"] == "completed"


async def test_listing_filters_and_pagination(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path]
) -> None:
    me = await make_account()
    first, _ = await ingest_upload(api, me.headers, clips["a_wav"], title="Harbor morning")
    second, _ = await ingest_upload(api, me.headers, clips["b_wav"], title="Bread notes")
    page = (await api.get("/api/media", params={"limit": 1}, headers=me.headers)).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["id"] == second["media_id"]
    page2 = (await api.get("/api/media", params={"limit": 1, "offset": 1}, headers=me.headers)).json()
    assert page2["items"][0]["id"] == first["media_id"]
    by_title = (await api.get("/api/media", params={"q": "bread"}, headers=me.headers)).json()
    assert [m["id"] for m in by_title["items"]] == [second["media_id"]]
    tag = (await api.get(f"/api/media/{first['media_id']}", headers=me.headers)).json()["tags"][0]
    by_tag = (await api.get("/api/media", params={"tag": tag}, headers=me.headers)).json()
    assert first["media_id"] in [m["id"] for m in by_tag["items"]]
    done = (await api.get("/api/media", params={"status": "completed"}, headers=me.headers)).json()
    assert done["total"] == 2
    bad = await api.get("/api/media", params={"status": "bogus"}, headers=me.headers)
    assert bad.status_code == 422
