"""Durable means durable: a SIGKILLed worker or a restarted Temporal server loses no run and redoes no step.

A gpu worker SIGKILLed mid-transcription is tested where it runs on a host of its own (test_distributed.py): the
retry, the steps not redone, no partial transcript left behind."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from models import TranscriptSegment
from nexus.core.db import session_scope
from nexus.core.orchestration import TaskQueues
from nexus.identity.service import personal_workspace
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, activity_attempts, follow_job, wait_stage
from tests.e2e.test_media_pipeline import _upload
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
