"""Durable means durable: a SIGKILLed worker or a restarted Temporal server loses no run and redoes no step."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from models import MediaItem, MediaStatus, SourceType, TranscriptSegment
from nexus.core.db import session_scope
from nexus.core.orchestration import TaskQueues
from nexus.identity.service import personal_workspace
from nexus.media.repository import media_prefix, overall_progress
from nexus.media.service import create_job, start_pipeline
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, activity_attempts, follow_job, wait_stage
from tests.e2e.test_media_pipeline import _upload, activity_results, assert_segments_sane
from tests.harness import TemporalServer, nexus_env


def _isolated(runtime: Runtime, database_url: str, client: Client, **env: str) -> tuple[Runtime, dict[str, str]]:
    """A runtime on task queues of its own, and the environment for worker processes serving them, so a test
    can SIGKILL those workers without touching the session's in-process ones."""
    settings = runtime.settings.model_copy(update={"task_queue_prefix": f"iso-{uuid.uuid4().hex[:8]}"})
    isolated = Runtime(
        settings=settings,
        engine=runtime.engine,
        store=runtime.store,
        queues=TaskQueues.from_prefix(settings.task_queue_prefix),
        database_url=database_url,
        _client=client,
    )
    return isolated, nexus_env(settings, database_url) | env


def _worker(env: dict[str, str], *queues: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "nexus.cli", "worker"]
    for q in queues:
        args += ["--queue", q]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_transcription_under_way(api: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> dict:
    """Poll until whisper has produced its first segments: the job's progress moves past the transcribing stage's
    start only when the activity reports a decoded segment (the model is loaded and into the audio)."""
    floor = overall_progress(MediaStatus.transcribing, 0.0)
    async with asyncio.timeout(120):
        while True:
            job = (await api.get(f"/api/jobs/{job_id}", headers=headers)).json()
            assert job["stage"] in ("pending", "extracting", "fingerprinting", "transcribing"), job
            if job["stage"] == "transcribing" and job["progress"] > floor:
                return job
            await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
async def test_worker_killed_mid_transcription_is_retried_without_redoing_finished_steps(
    api: httpx.AsyncClient,
    runtime: Runtime,
    database_url: str,
    make_account: MakeAccount,
    clips: dict[str, Path],
    temporal_client: Client,
) -> None:
    isolated, env = _isolated(runtime, database_url, temporal_client)
    me = await make_account()
    async with session_scope(runtime.engine) as session:
        workspace = await personal_workspace(session, me.user)
        media = MediaItem(owner_id=me.user.id, workspace_id=workspace.id, source_type=SourceType.file)
        media.original_key = f"{media_prefix(me.user.id, media.id)}/original.mp3"
        runtime.store.put_file(media.original_key, clips["long_mp3"])
        session.add(media)
        await session.flush()
        job = await create_job(session, media)

    cpu_llm = _worker(env, "workflows", "cpu", "llm")
    gpu = _worker(env, "gpu")
    replacement = None
    try:
        await start_pipeline(temporal_client, isolated, media, job)
        at_kill = await _wait_transcription_under_way(api, me.headers, str(job.id))
        assert at_kill["progress"] < overall_progress(MediaStatus.transcribing, 1.0), at_kill  # not yet finished
        assert gpu.poll() is None
        gpu.send_signal(signal.SIGKILL)
        gpu.wait()
        killed_at = datetime.now(UTC)
        replacement = _worker(env, "gpu")
        final = (await wait_stage(api, me.headers, str(job.id), {"completed", "failed", "cancelled"}, 180))["stage"]
    finally:
        for proc in (cpu_llm, gpu, replacement):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    assert final == "completed"
    workflow_id = job.workflow_id
    # The killed transcription was retried (attempt 2 is the one that finished) ...
    assert await activity_attempts(temporal_client, workflow_id, "media.transcribe") == [2]
    # ... and the steps that had finished before the kill ran once, on their first attempt, and were not redone.
    for finished_before_kill in ("media.fetch", "media.fingerprint"):
        assert await activity_attempts(temporal_client, workflow_id, finished_before_kill) == [1]
    # The killed attempt left no partial transcript behind for the retry to mistake for a finished one: the retry
    # transcribed from scratch (not `reused`), after the kill, the whole clip.
    (transcribed,) = await activity_results(temporal_client, workflow_id, "media.transcribe")
    assert transcribed["reused"] is False, transcribed
    transcript = select(TranscriptSegment).where(TranscriptSegment.media_id == media.id).order_by(TranscriptSegment.idx)
    async with session_scope(runtime.engine) as session:
        rows = (await session.execute(transcript)).scalars().all()
        stored = await session.get(MediaItem, media.id)
    assert len(rows) == transcribed["segments"] and [r.idx for r in rows] == list(range(len(rows)))
    assert all(r.created_at > killed_at for r in rows), (killed_at, [r.created_at for r in rows])
    assert stored is not None and stored.duration_s
    segments = [{"start": r.start_s, "end": r.end_s, "text": r.text, "speaker": r.speaker} for r in rows]
    assert_segments_sane(segments, stored.duration_s)
    assert segments[-1]["end"] > 0.9 * stored.duration_s, (stored.duration_s, segments[-1])  # to the end


@pytest.mark.timeout(240)
async def test_temporal_server_restart_mid_run_loses_nothing(
    api: httpx.AsyncClient,
    make_account: MakeAccount,
    clips: dict[str, Path],
    runtime: Runtime,
    temporal_server: TemporalServer,
    temporal_client: Client,
) -> None:
    me = await make_account()
    submitted = (await _upload(api, me.headers, clips["long_mp3"])).json()
    await wait_stage(api, me.headers, submitted["job_id"], {"transcribing"})
    temporal_server.restart()  # SIGKILL, then start again on the same SQLite history
    events = await follow_job(api, me.headers, submitted["job_id"], timeout=200)
    assert events[-1]["stage"] == "completed", events[-1]
    assert await activity_attempts(temporal_client, submitted["workflow_id"], "media.fetch") == [1]
    async with session_scope(runtime.engine) as session:
        n = (
            await session.execute(
                select(func.count()).where(TranscriptSegment.media_id == uuid.UUID(submitted["media_id"]))
            )
        ).scalar_one()
    assert n > 0
    ready = await api.get("/health/ready")
    assert ready.status_code == 200, ready.text


@pytest.mark.timeout(240)
async def test_worker_killed_mid_generation_retries_and_stores_one_answer(
    api: httpx.AsyncClient, runtime: Runtime, database_url: str, make_account: MakeAccount, temporal_client: Client
) -> None:
    from models import ChatTurn, Conversation, Message, TurnEvent
    from nexus.chat.contracts import ChainMode
    from nexus.chat.service import open_turn, start_turn
    from tests.conftest import read_sse
    from tests.fake_llm import FakeLLM

    fake = FakeLLM()
    fake.answer = " ".join(f"word{i}" for i in range(16))
    fake.chunk_delay_s = 0.3
    isolated, env = _isolated(
        runtime, database_url, temporal_client, NEXUS_OPENAI_BASE_URL=fake.url, NEXUS_OPENAI_MODEL="fake"
    )
    me = await make_account()
    async with session_scope(runtime.engine) as session:
        workspace = await personal_workspace(session, me.user)
        conversation = Conversation(owner_id=me.user.id, workspace_id=workspace.id, title="kill test")
        session.add(conversation)
        await session.flush()
        turn, _ = await open_turn(session, me.user, conversation, "count slowly")

    cpu = _worker(env, "workflows", "cpu", "gpu")
    llm = _worker(env, "llm")
    replacement = None
    try:
        await start_turn(temporal_client, isolated, turn, "count slowly", ["openai"], ChainMode.sequential, None)
        async with asyncio.timeout(90):
            while True:  # wait until the answer is visibly streaming
                async with session_scope(runtime.engine) as session:
                    tokens = (
                        await session.execute(
                            select(func.count()).where(TurnEvent.turn_id == turn.id, TurnEvent.kind == "token")
                        )
                    ).scalar_one()
                if tokens >= 2:
                    break
                await asyncio.sleep(0.1)
        llm.send_signal(signal.SIGKILL)
        llm.wait()
        replacement = _worker(env, "llm")
        async with asyncio.timeout(120):
            async with api.stream("GET", f"/api/chat/{turn.id}/events", headers=me.headers) as resp:
                events = await read_sse(resp)
    finally:
        for proc in (cpu, llm, replacement):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        fake.close()

    kinds = [k for k, _ in events]
    assert "reset" in kinds and kinds[-1] == "final"
    after_reset = "".join(d["text"] for k, d in events[kinds.index("reset") :] if k == "token")
    assert after_reset == fake.answer == events[-1][1]["content"]
    assert await activity_attempts(temporal_client, turn.workflow_id, "chat.generate") == [2]
    async with session_scope(runtime.engine) as session:
        answers = (await session.execute(select(Message).where(Message.turn_id == turn.id))).scalars().all()
        stored_turn = await session.get(ChatTurn, turn.id)
    assert len(answers) == 1 and answers[0].content == fake.answer
    assert stored_turn is not None and stored_turn.assistant_message_id == answers[0].id
