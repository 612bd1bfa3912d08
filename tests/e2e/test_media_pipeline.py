"""The media pipeline end to end: real yt-dlp, ffmpeg, chromaprint, faster-whisper, MiniLM, Temporal, Postgres."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from temporalio.client import Client

from models import TranscriptSegment
from nexus.core.codec import decode_history
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, follow_job
from tests.media_fixtures import MediaServer

STAGES = ["pending", "extracting", "fingerprinting", "transcribing", "enriching", "embedding", "completed"]


async def _submit_url(api: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: str) -> dict:
    resp = await api.post("/api/media/process", json={"source": "url", "url": url, **extra}, headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()


async def _upload(
    api: httpx.AsyncClient, headers: dict[str, str], path: Path, source: str = "file", **form: str
) -> httpx.Response:
    with path.open("rb") as fh:
        return await api.post(
            "/api/media/upload", files={"file": (path.name, fh)}, data={"source": source, **form}, headers=headers
        )


async def ingest_upload(api: httpx.AsyncClient, headers: dict[str, str], path: Path, **kw: str) -> tuple[dict, list]:
    resp = await _upload(api, headers, path, **kw)
    assert resp.status_code == 202, resp.text
    submitted = resp.json()
    return submitted, await follow_job(api, headers, submitted["job_id"])


async def activity_results(client: Client, workflow_id: str, activity_name: str, run_id: str | None = None) -> list:
    """What each completed execution of `activity_name` returned, decoded from the run's history (the latest run
    unless `run_id` is given): the activities report `reused` there, so a test can see which did real work."""
    scheduled: dict[int, str] = {}
    results: list = []
    stored = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    history = await decode_history(stored, client.data_converter.payload_codec)  # encrypted in Temporal's store
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            if scheduled.get(attrs.scheduled_event_id) == activity_name:
                results.append(json.loads(attrs.result.payloads[0].data))
    return results


def assert_segments_sane(segments: list[dict], duration_s: float) -> None:
    """Every segment has words and a real span inside the audio; spans are in order and never overlap."""
    assert segments, "no transcript"
    assert all(s["text"].strip() for s in segments), segments
    # Whisper's timestamps are stored unclamped and its last one can overshoot the audio a little (5.0 s seen on
    # c.webm's 4.84 s): allow that, not a segment that starts or ends well past the end.
    assert all(0 <= s["start"] < s["end"] <= duration_s + 0.5 for s in segments), (duration_s, segments)
    assert all(prev["end"] <= cur["start"] for prev, cur in itertools.pairwise(segments)), segments
    # Speakers are labelled only when asked for (speakers=N, NEXUS_DIARIZE) or by channel: none of these clips.
    assert all(s["speaker"] is None for s in segments), segments


def _words(text: str) -> set[str]:
    return {w.strip(".,!?;:'\"").lower() for w in text.split()}


def assert_heard(segments: list[dict], expected: set[str], at_least: int) -> None:
    """Whisper tiny on synthetic speech misses a word now and then: most of the distinctive words must be there."""
    heard = expected & _words(" ".join(s["text"] for s in segments))
    assert len(heard) >= at_least, f"heard only {heard} of {expected}: {segments}"


async def test_url_to_transcript_summary_tags_and_vectors(
    api: httpx.AsyncClient, make_account: MakeAccount, media_server: MediaServer, runtime: Runtime
) -> None:
    me = await make_account()
    submitted = await _submit_url(api, me.headers, f"{media_server.url}/a.mp3")
    assert submitted["workflow_id"] == f"media-{submitted['media_id']}"
    events = await follow_job(api, me.headers, submitted["job_id"])

    stages = [e["stage"] for e in events]
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == STAGES
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    media = (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).json()
    assert media["status"] == "completed" and media["source_type"] == "url"
    assert 8 < media["duration_s"] < 10
    assert_heard(media["segments"], {"lighthouse", "seven", "ships", "notebook", "harbor", "leather", "lamp"}, 5)
    assert_segments_sane(media["segments"], media["duration_s"])
    assert media["enrichment_provider"] == "extractive"
    assert media["summary"] and media["title"]
    assert 3 <= len(media["tags"]) <= 8
    assert media["language"] == "en"

    async with runtime.engine.connect() as conn:
        # Every passage has its full-text vector, and a 384-d vector of the index's (shipped) model.
        chunks = (
            await conn.execute(
                text(
                    "SELECT c.tsv IS NOT NULL, vector_dims(v.embedding), m.name FROM media_chunks c "
                    "JOIN chunk_vectors_1 v ON v.chunk_id = c.id JOIN embedding_models m ON m.id = 1 "
                    "WHERE c.media_id = :m"
                ),
                {"m": uuid.UUID(submitted["media_id"])},
            )
        ).all()
    assert chunks and all(tsv and dims == 384 and name == "all-MiniLM-L6-v2" for tsv, dims, name in chunks)

    job = (await api.get(f"/api/jobs/{submitted['job_id']}", headers=me.headers)).json()
    assert job["stage"] == "completed" and job["progress"] == 100 and job["attempts"] == 1 and job["error"] is None


async def test_html_page_with_video_is_found_by_yt_dlp(
    api: httpx.AsyncClient, make_account: MakeAccount, media_server: MediaServer
) -> None:
    me = await make_account()
    submitted = await _submit_url(api, me.headers, f"{media_server.url}/page/b.mp4.html", title="Bread")
    events = await follow_job(api, me.headers, submitted["job_id"])
    assert events[-1]["stage"] == "completed", events[-1]
    media = (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).json()
    assert media["title"] == "Bread"  # the user's title is kept
    assert media["has_video"] is True  # the console plays GET /original with its picture
    assert_segments_sane(media["segments"], media["duration_s"])
    assert_heard(media["segments"], {"sourdough", "flour", "water", "salt", "dough", "overnight", "kitchen"}, 5)


async def test_upload_and_mic_recording(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path]
) -> None:
    me = await make_account()
    submitted, events = await ingest_upload(api, me.headers, clips["c_webm"], source="mic")
    assert events[-1]["stage"] == "completed"
    media = (await api.get(f"/api/media/{submitted['media_id']}", headers=me.headers)).json()
    assert media["source_type"] == "mic" and media["original_filename"] == "c.webm"
    assert media["has_video"] is False  # a .webm of sound only: the console plays it as audio
    assert_segments_sane(media["segments"], media["duration_s"])
    assert_heard(media["segments"], {"dentist", "thursday", "morning", "appointment", "margaret"}, 3)

    listed = (await api.get("/api/media", params={"source_type": "mic"}, headers=me.headers)).json()
    assert [m["id"] for m in listed["items"]] == [submitted["media_id"]] and listed["total"] == 1


async def test_near_duplicates_are_linked_and_different_speech_is_not(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], runtime: Runtime
) -> None:
    me = await make_account()
    original, events = await ingest_upload(api, me.headers, clips["a_wav"])
    assert events[-1]["stage"] == "completed"

    for copy in ("a_64k", "a_shift"):
        dup, events = await ingest_upload(api, me.headers, clips[copy])
        assert events[-1]["stage"] == "duplicate", (copy, events[-1])
        media = (await api.get(f"/api/media/{dup['media_id']}", headers=me.headers)).json()
        assert media["status"] == "duplicate" and media["duplicate_of"] == original["media_id"]
        assert media["segments"] == []  # stopped before transcription
        async with runtime.engine.connect() as conn:
            n = (
                await conn.execute(select(func.count()).where(TranscriptSegment.media_id == uuid.UUID(dup["media_id"])))
            ).scalar_one()
        assert n == 0

    other, events = await ingest_upload(api, me.headers, clips["b_wav"])
    assert events[-1]["stage"] == "completed"
    assert (await api.get(f"/api/media/{other['media_id']}", headers=me.headers)).json()["duplicate_of"] is None

    # Another user's identical upload is not a duplicate of mine.
    stranger = await make_account()
    _, events = await ingest_upload(api, stranger.headers, clips["a_64k"])
    assert events[-1]["stage"] == "completed"

    dups = (await api.get("/api/media", params={"status": "duplicate"}, headers=me.headers)).json()
    assert dups["total"] == 2
