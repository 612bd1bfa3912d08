"""A Google Drive file through the whole pipeline, fetched with the user's connected account (a fresh token from
the integration's workflow); wrong ids and missing connections are 4xx at submission, not failed jobs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from nexus.runtime import Runtime
from tests.conftest import MakeAccount, follow_job
from tests.e2e.test_integrations import as_google, connect, stop_refresh_workflows
from tests.harness import LiveServer
from tests.oauth_provider import OAuthProvider


@pytest.fixture
async def google(runtime: Runtime, clips: dict[str, Path], temporal_client: Client) -> AsyncIterator[OAuthProvider]:
    with OAuthProvider(user={"id": f"g-{uuid.uuid4().hex[:8]}", "email": "me@example.com"}) as provider:
        provider.files["talk-1"] = ("talk.wav", "audio/wav", clips["a_wav"].read_bytes())
        provider.files["notes-1"] = ("notes.txt", "text/plain", b"not audio at all")
        with as_google(runtime, provider):
            yield provider
            await stop_refresh_workflows(temporal_client, runtime)


async def test_a_drive_file_is_imported_with_a_fresh_token(
    live_api: LiveServer, make_account: MakeAccount, google: OAuthProvider
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, headers=account.headers, timeout=30) as api:
        none = await api.post("/api/media/process", json={"source": "google_drive", "file_id": "talk-1"})
        assert none.status_code == 409 and "/api/integrations/google/connect" in none.json()["detail"]

        await connect(live_api, account, "google")
        missing = await api.post("/api/media/process", json={"source": "google_drive", "file_id": "nope-9"})
        assert missing.status_code == 400 and "no Drive file" in missing.json()["detail"]
        bad = await api.post("/api/media/process", json={"source": "google_drive"})
        assert bad.status_code == 422 and "file_id" in bad.text

        google.api_fail_next_401(1)  # the token was revoked at Google meanwhile: one refresh, one retry
        submitted = await api.post("/api/media/process", json={"source": "google_drive", "file_id": "talk-1"})
        assert submitted.status_code == 202, submitted.text
        events = await follow_job(api, account.headers, submitted.json()["job_id"])
        assert events[-1]["stage"] == "completed", events[-1]
        item = (await api.get(f"/api/media/{submitted.json()['media_id']}")).json()
        assert item["title"] == "talk.wav" and item["source_type"] == "google_drive"
        assert item["segments"] and item["duration_s"] > 1

        not_audio = await api.post("/api/media/process", json={"source": "google_drive", "file_id": "notes-1"})
        events = await follow_job(api, account.headers, not_audio.json()["job_id"])
        assert events[-1]["stage"] == "failed" and "BadInput" in (events[-1].get("error") or events[-1]["message"])
