"""Bad input gets a clear error and loses nothing; transient errors retry; retry, cancel and delete behave."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from models import MediaChunk, MediaStatus, TranscriptSegment
from nexus.core.orchestration import SA_STAGE
from nexus.media.repository import media_prefix
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, activity_attempts, follow_job, overridden, wait_stage
from tests.e2e.test_media_pipeline import _submit_url, _upload, activity_results, ingest_upload
from tests.fake_llm import FakeLLM
from tests.media_fixtures import MediaServer


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/a.mp3", "use http:// or https://"),
        ("file:///etc/passwd", "use http:// or https://"),
        ("javascript:alert(1)", "use http:// or https://"),
        ("http://", "no host"),
    ],
)
async def test_bad_urls_are_refused_with_a_reason(
    api: httpx.AsyncClient, make_account: MakeAccount, url: str, fragment: str
) -> None:
    me = await make_account()
    resp = await api.post("/api/media/process", json={"source": "url", "url": url}, headers=me.headers)
    assert resp.status_code == 400 and fragment in resp.json()["detail"]
    assert (await api.get("/api/media", headers=me.headers)).json()["total"] == 0  # no half-written rows


async def test_private_addresses_are_refused_unless_allowed(
    api: httpx.AsyncClient, make_account: MakeAccount, runtime: Runtime, media_server: MediaServer
) -> None:
    me = await make_account()
    with overridden(runtime.settings, allow_private_urls=False):
        for url in (f"{media_server.url}/a.mp3", "http://localhost/a.mp3", "http://[::1]/x", "http://169.254.169.254/"):
            resp = await api.post("/api/media/process", json={"source": "url", "url": url}, headers=me.headers)
            assert resp.status_code == 400, url
            assert "private or local address" in resp.json()["detail"]
    assert (await api.get("/api/media", headers=me.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    ("clip", "status", "fragment"),
    [
        ("empty", 400, "empty"),
        ("text", 415, "not a readable audio/video file"),
        ("silent_video", 415, "no audio stream"),
    ],
)
async def test_bad_uploads_are_refused_with_a_reason(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], clip: str, status: int, fragment: str
) -> None:
    me = await make_account()
    resp = await _upload(api, me.headers, clips[clip])
    assert resp.status_code == status and fragment in resp.json()["detail"], resp.text
    assert (await api.get("/api/media", headers=me.headers)).json()["total"] == 0


async def test_upload_limits(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], runtime: Runtime
) -> None:
    me = await make_account()
    with overridden(runtime.settings, max_media_mb=0.01):
        resp = await _upload(api, me.headers, clips["long_mp3"])
    assert resp.status_code == 413 and "NEXUS_MAX_MEDIA_MB" in resp.json()["detail"]
    with overridden(runtime.settings, max_media_minutes=0.5):
        resp = await _upload(api, me.headers, clips["long_mp3"])
    assert resp.status_code == 415 and "NEXUS_MAX_MEDIA_MINUTES" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/missing.mp3", "404"),
        ("/nomedia.html", "no audio or video found"),
        ("/corrupt.mp3", "not a readable audio/video file"),
        ("/notes.txt", "not a readable audio/video file"),
    ],
)
async def test_bad_url_content_fails_the_job_fast_with_a_reason(
    api: httpx.AsyncClient,
    make_account: MakeAccount,
    media_server: MediaServer,
    runtime: Runtime,
    temporal_client: Client,
    path: str,
    fragment: str,
) -> None:
    me = await make_account()
    submitted = await _submit_url(api, me.headers, f"{media_server.url}{path}")
    events = await follow_job(api, me.headers, submitted["job_id"])
    assert events[-1]["stage"] == "failed"
    assert "BadInput" in events[-1]["message"] and fragment in events[-1]["message"], events[-1]
    job = (await api.get(f"/api/jobs/{submitted['job_id']}", headers=me.headers)).json()
    assert job["stage"] == "failed" and fragment in job["error"]
    media = (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).json()
    assert media["status"] == "failed" and fragment in media["error"]
    # non-retryable: one attempt only, and nothing left in storage
    assert await activity_attempts(temporal_client, submitted["workflow_id"], "media.fetch") == [1]
    assert not runtime.store.exists(f"{media_prefix(me.user.id, uuid.UUID(submitted['media_id']))}/audio.wav")


async def test_too_long_url_media_fails_with_the_limit_named(
    api: httpx.AsyncClient, make_account: MakeAccount, media_server: MediaServer, runtime: Runtime
) -> None:
    me = await make_account()
    with overridden(runtime.settings, max_media_minutes=0.5):
        submitted = await _submit_url(api, me.headers, f"{media_server.url}/long.mp3")
        events = await follow_job(api, me.headers, submitted["job_id"])
    assert events[-1]["stage"] == "failed" and "NEXUS_MAX_MEDIA_MINUTES" in events[-1]["message"]


async def test_transient_server_errors_are_retried_visibly(
    api: httpx.AsyncClient, make_account: MakeAccount, media_server: MediaServer, temporal_client: Client
) -> None:
    me = await make_account()
    media_server.fail_next["/b.wav"] = [503, 503]
    submitted = await _submit_url(api, me.headers, f"{media_server.url}/b.wav")
    events = await follow_job(api, me.headers, submitted["job_id"])
    assert events[-1]["stage"] == "completed", events[-1]
    assert await activity_attempts(temporal_client, submitted["workflow_id"], "media.fetch") == [3]


async def test_retry_resumes_from_the_failed_step_without_redoing_finished_ones(
    api: httpx.AsyncClient,
    make_account: MakeAccount,
    media_server: MediaServer,
    runtime: Runtime,
    temporal_client: Client,
) -> None:
    me = await make_account()
    fake = FakeLLM()
    fake.fail_with = [503, 401]  # a transient error (retried), then a permanent one (fails the step)
    try:
        with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
            submitted = await _submit_url(api, me.headers, f"{media_server.url}/a.wav")
            events = await follow_job(api, me.headers, submitted["job_id"])
            assert events[-1]["stage"] == "failed"
            assert "HTTP 401" in events[-1]["message"] and "ProviderError" in events[-1]["message"]
            assert await activity_attempts(temporal_client, submitted["workflow_id"], "media.enrich") == [2]

            media_id = uuid.UUID(submitted["media_id"])
            downloads = media_server.gets("/a.wav")
            first_run = (await temporal_client.get_workflow_handle(submitted["workflow_id"]).describe()).run_id
            async with runtime.engine.connect() as conn:
                segments_before = (
                    (await conn.execute(select(TranscriptSegment.id).where(TranscriptSegment.media_id == media_id)))
                    .scalars()
                    .all()
                )
            assert segments_before

            resp = await api.post(f"/api/jobs/{submitted['job_id']}/retry", headers=me.headers)
            assert resp.status_code == 202, resp.text
            # `attempts` counts executions that ran: the first run, its automatic retry of enrich, and this retry
            assert resp.json()["attempts"] == 3
            events = await follow_job(api, me.headers, submitted["job_id"])
            assert events[0]["stage"] == "pending" and events[-1]["stage"] == "completed", events
    finally:
        fake.close()

    assert media_server.gets("/a.wav") == downloads  # not downloaded again
    async with runtime.engine.connect() as conn:
        segments_after = (
            (await conn.execute(select(TranscriptSegment.id).where(TranscriptSegment.media_id == media_id)))
            .scalars()
            .all()
        )
    assert segments_after == segments_before  # not transcribed again
    media = (await api.get(f"/api/media/{media_id}", headers=me.headers)).json()
    assert media["enrichment_provider"] == "openai" and media["tags"] == ["lighthouse", "ships", "harbor"]
    assert media["title"] == "Harbor log"
    assert fake.requests[-1]["body"]["model"] == "fake-model"
    # History holds both runs' steps: the first run fetched and transcribed; the retry, a new run of the same
    # workflow, ran those activities once each, and each found its stored output and did no work.
    workflow_id = submitted["workflow_id"]
    for step in ("media.fetch", "media.transcribe"):
        did = await activity_results(temporal_client, workflow_id, step, run_id=first_run)
        redid = await activity_results(temporal_client, workflow_id, step)
        assert [r["reused"] for r in did] == [False] and [r["reused"] for r in redid] == [True], (step, did, redid)
    (transcribed,) = await activity_results(temporal_client, workflow_id, "media.transcribe")
    assert transcribed["segments"] == len(segments_before)
    assert await activity_attempts(temporal_client, workflow_id, "media.enrich") == [1]  # the retried step, redone
    job = (await api.get(f"/api/jobs/{submitted['job_id']}", headers=me.headers)).json()
    assert job["stage"] == "completed" and job["attempts"] == 3 and job["error"] is None

    conflict = await api.post(f"/api/jobs/{submitted['job_id']}/retry", headers=me.headers)
    assert conflict.status_code == 409 and "only failed or cancelled" in conflict.json()["detail"]


async def test_cancel_stops_a_running_job(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], temporal_client: Client
) -> None:
    me = await make_account()
    resp = await _upload(api, me.headers, clips["long_mp3"])
    submitted = resp.json()
    await wait_stage(api, me.headers, submitted["job_id"], {"transcribing"})
    assert (await api.post(f"/api/jobs/{submitted['job_id']}/cancel", headers=me.headers)).status_code == 202
    events = await follow_job(api, me.headers, submitted["job_id"])
    assert events[-1]["stage"] == "cancelled"
    media = (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).json()
    assert media["status"] == "cancelled"
    desc = await temporal_client.get_workflow_handle(submitted["workflow_id"]).describe()
    assert desc.status == WorkflowExecutionStatus.CANCELED
    again = await api.post(f"/api/jobs/{submitted['job_id']}/cancel", headers=me.headers)
    assert again.status_code == 409


async def test_delete_removes_rows_vectors_and_objects(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], runtime: Runtime
) -> None:
    me = await make_account()
    submitted, events = await ingest_upload(api, me.headers, clips["b_wav"])
    assert events[-1]["stage"] == "completed"
    media_id = uuid.UUID(submitted["media_id"])
    prefix = media_prefix(me.user.id, media_id)
    assert runtime.store.exists(f"{prefix}/audio.wav")

    assert (await api.delete(f"/api/media/{media_id}", headers=me.headers)).status_code == 204
    assert (await api.get(f"/api/media/{media_id}", headers=me.headers)).status_code == 404
    assert (await api.get(f"/api/jobs/{submitted['job_id']}", headers=me.headers)).status_code == 404
    assert not runtime.store.exists(f"{prefix}/audio.wav")
    assert runtime.store.delete_prefix(prefix) == 0
    async with runtime.engine.connect() as conn:
        for table in (MediaChunk, TranscriptSegment):
            assert not (await conn.execute(select(table.id).where(table.media_id == media_id))).first()


async def test_delete_cancels_a_running_workflow(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], temporal_client: Client
) -> None:
    me = await make_account()
    submitted = (await _upload(api, me.headers, clips["long_mp3"])).json()
    await wait_stage(api, me.headers, submitted["job_id"], {"transcribing"})
    assert (await api.delete(f"/api/media/{submitted['media_id']}", headers=me.headers)).status_code == 204
    # Cancelled, not failed: a delete that skipped the cancel would leave the run going, to fail on vanished rows.
    desc = await temporal_client.get_workflow_handle(submitted["workflow_id"]).describe()
    assert desc.status == WorkflowExecutionStatus.CANCELED, desc.status
    assert desc.typed_search_attributes.get(SA_STAGE) == MediaStatus.cancelled  # it recorded its own end
    assert (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).status_code == 404


def test_media_urls_a_page_points_to_are_checked_too() -> None:
    from nexus.core.errors import BadInput
    from nexus.media.fetch import check_url, media_urls

    info = {"url": "http://10.1.2.3/clip.mp4", "requested_formats": [{"url": "http://127.0.0.1/audio.m4a"}]}
    assert media_urls(info) == ["http://10.1.2.3/clip.mp4", "http://127.0.0.1/audio.m4a"]
    for media_url in media_urls(info):
        with pytest.raises(BadInput, match="private or local address"):
            check_url(media_url, allow_private=False)
