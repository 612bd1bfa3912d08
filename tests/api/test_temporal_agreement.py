"""Temporal and Postgres converge (hardening item 3): an unreachable Temporal is a fast 503, never "not running";
a retry whose start fails leaves the job as it was; a run ended outside the API is reflected in the job, and in
the chat turn (whose stream would otherwise wait for an end that never comes)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.client import Client

from api.app import create_app
from models import ChatTurn, Conversation, JobEvent, MediaItem, MediaJob, MediaStatus, SourceType, TurnEvent
from models.base import utcnow
from nexus.chat.contracts import ChatTurnInput
from nexus.chat.service import open_turn, reconcile_stale_turns, reconcile_turn
from nexus.chat.service import start_run as start_turn_run
from nexus.core.db import session_maker, session_scope
from nexus.core.orchestration import TaskQueues, media_workflow_id
from nexus.media.contracts import MediaPipelineInput
from nexus.media.service import Busy, reconcile, reconcile_stale, retry, start_run
from nexus.runtime import Runtime
from tests.conftest import Account, MakeAccount


async def job_row(runtime: Runtime, owner: Account, stage: MediaStatus = MediaStatus.pending) -> MediaJob:
    async with session_scope(runtime.engine) as session:
        media = MediaItem(
            owner_id=owner.user.id, source_type=SourceType.url, source_url="http://127.0.0.1:9/gone.mp3", status=stage
        )
        session.add(media)
        await session.flush()
        job = MediaJob(
            media_id=media.id,
            owner_id=owner.user.id,
            workflow_id=f"{media_workflow_id(media.id)}-{uuid.uuid4().hex[:6]}",
            stage=stage,
        )
        session.add(job)
        await session.flush()
        session.add(JobEvent(job_id=job.id, stage=MediaStatus.pending, message="queued"))
    return job


async def fresh(runtime: Runtime, job: MediaJob) -> MediaJob:
    async with session_scope(runtime.engine) as session:
        found = await session.get(MediaJob, job.id)
        assert found is not None
        return found


@pytest.fixture
async def frozen_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a Temporal that accepts connections and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        frozen = runtime.settings.model_copy(update={"temporal_address": f"127.0.0.1:{silent.getsockname()[1]}"})
        rt = Runtime(frozen, runtime.engine, runtime.store, runtime.queues, runtime.database_url)
        app = create_app(frozen, rt)
        app.state.runtime = rt  # ASGITransport runs no lifespan
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client


async def test_a_frozen_temporal_is_a_fast_503_not_a_409(
    frozen_api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    owner = await make_account()
    job = await job_row(runtime, owner, MediaStatus.transcribing)
    calls = (
        ("POST", f"/api/jobs/{job.id}/cancel"),
        ("POST", f"/api/jobs/{job.id}/retry"),
        ("DELETE", f"/api/media/{job.media_id}"),
        ("POST", "/api/media/process"),
    )

    async def timed(method: str, url: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        resp = await frozen_api.request(method, url, headers=owner.headers, json={"url": "http://127.0.0.1:9/a.mp3"})
        return resp, time.monotonic() - started

    for (_, url), (resp, took) in zip(calls, await asyncio.gather(*(timed(m, u) for m, u in calls)), strict=True):
        assert resp.status_code == 503, (url, resp.status_code, resp.text)
        assert "Temporal is unavailable" in resp.json()["detail"] and resp.headers["retry-after"]
        assert took < 8, (url, took)
    assert (await fresh(runtime, job)).stage == MediaStatus.transcribing  # nothing was changed or deleted
    async with session_scope(runtime.engine) as session:
        assert await session.get(MediaItem, job.media_id) is not None


async def test_a_retry_that_cannot_start_leaves_the_job_failed_with_the_reason(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from temporalio.service import RPCError, RPCStatusCode

    from nexus.media import service

    owner = await make_account()
    job = await job_row(runtime, owner, MediaStatus.failed)

    async def refused(*_: object) -> None:
        raise RPCError("the frontend went away", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(service, "start_run", refused)  # Temporal answers describe, then refuses the start
    resp = await api.post(f"/api/jobs/{job.id}/retry", headers=owner.headers)
    assert resp.status_code == 503 and "the frontend went away" in resp.json()["detail"]
    after = await fresh(runtime, job)
    assert after.stage == MediaStatus.failed and after.attempts == 1  # not left `pending` with no run behind it
    assert "the retry could not start" in (after.error or "")
    monkeypatch.undo()
    resp = await api.post(f"/api/jobs/{job.id}/retry", headers=owner.headers)  # Temporal is back: it starts
    assert resp.status_code == 202 and resp.json()["attempts"] == 2, resp.text


async def test_two_retries_at_once_start_one_run_and_leave_its_job_alone(
    runtime: Runtime, make_account: MakeAccount, temporal_client: Client
) -> None:
    """A double click (or a user's retry and an operator's bulk retry at once): the second waited on the item's
    lock, then failed to start an already running run and marked the live run's job `failed`."""
    owner = await make_account()
    job = await job_row(runtime, owner, MediaStatus.failed)
    # Queues nobody serves: the started run stays running, as a long one would.
    nowhere = dataclasses.replace(runtime, queues=TaskQueues.from_prefix(f"nobody-{uuid.uuid4().hex[:6]}"))

    async def retry_once() -> str:
        async with session_maker(runtime.engine)() as session:
            found = await session.get(MediaJob, job.id)
            assert found is not None
            try:
                await retry(temporal_client, nowhere, session, found)
            except Busy as exc:
                return str(exc)
            return "started"

    outcomes = await asyncio.gather(retry_once(), retry_once())
    assert outcomes.count("started") == 1, outcomes
    assert any("another retry has just started it" in outcome for outcome in outcomes), outcomes
    assert (await fresh(runtime, job)).stage == MediaStatus.pending  # the live run's job, not `failed`
    await temporal_client.get_workflow_handle(job.workflow_id).terminate(reason="test over")


async def test_a_run_terminated_in_the_temporal_ui_is_reflected_in_the_job(
    runtime: Runtime, make_account: MakeAccount, temporal_client: Client
) -> None:
    owner = await make_account()
    job = await job_row(runtime, owner)
    # A run on queues nobody serves stays RUNNING until an operator terminates it.
    nowhere = TaskQueues.from_prefix(f"nobody-{uuid.uuid4().hex[:6]}")
    inp = MediaPipelineInput(media_id=job.media_id, job_id=job.id, user_id=owner.user.id, queues=nowhere)
    handle = await start_run(temporal_client, inp, job.workflow_id)
    assert await reconcile(temporal_client, runtime, job) is None  # running: nothing to do
    await handle.terminate(reason="operator")
    assert await reconcile(temporal_client, runtime, job) == MediaStatus.failed
    after = await fresh(runtime, job)
    assert after.stage == MediaStatus.failed and "terminated outside Nexus" in (after.error or "")
    assert after.finished_at is not None  # terminal: streams end, retry is allowed


async def test_the_sweep_fails_quiet_jobs_with_no_run_and_leaves_fresh_ones(
    runtime: Runtime, make_account: MakeAccount, temporal_client: Client
) -> None:
    owner = await make_account()
    stuck, fresh_job = await job_row(runtime, owner), await job_row(runtime, owner)
    async with session_scope(runtime.engine) as session:
        await session.execute(
            update(MediaJob).where(MediaJob.id == stuck.id).values(updated_at=utcnow() - timedelta(minutes=10))
        )
    assert await reconcile_stale(temporal_client, runtime) >= 1
    assert (await fresh(runtime, stuck)).stage == MediaStatus.failed
    assert "no run exists" in ((await fresh(runtime, stuck)).error or "")
    assert (await fresh(runtime, fresh_job)).stage == MediaStatus.pending  # its start may still be on its way


async def test_the_reconcile_schedule_exists_once_and_its_run_sweeps(
    runtime: Runtime, workers: None, temporal_client: Client
) -> None:
    from nexus.core.orchestration import schedule_id
    from nexus.ops.schedules import ensure_schedules

    await ensure_schedules(temporal_client, runtime)
    await ensure_schedules(temporal_client, runtime)  # idempotent: workers call it at every start
    orphans = temporal_client.get_schedule_handle(schedule_id(runtime.settings.task_queue_prefix, "sweep-orphans"))
    assert (await orphans.describe()).schedule.action.workflow == "SweepOrphans"  # type: ignore[union-attr]
    await orphans.delete()
    cleanup = temporal_client.get_schedule_handle(schedule_id(runtime.settings.task_queue_prefix, "cleanup"))
    cleanup_schedule = (await cleanup.describe()).schedule
    assert cleanup_schedule.action.workflow == "Cleanup"  # type: ignore[union-attr]
    assert [i.every for i in cleanup_schedule.spec.intervals] == [timedelta(days=1)]
    await cleanup.delete()
    schedule = temporal_client.get_schedule_handle(schedule_id(runtime.settings.task_queue_prefix, "reconcile-jobs"))
    described = await schedule.describe()
    assert described.schedule.action.workflow == "ReconcileJobs"  # type: ignore[union-attr]
    await schedule.trigger()
    async with asyncio.timeout(30):
        while not (await schedule.describe()).info.recent_actions:
            await asyncio.sleep(0.2)
    run = (await schedule.describe()).info.recent_actions[-1].action
    swept = await temporal_client.get_workflow_handle(run.workflow_id, run_id=run.first_execution_run_id).result()  # type: ignore[attr-defined]
    assert isinstance(swept, int)
    await schedule.delete()


async def turn_row(runtime: Runtime, owner: Account) -> ChatTurn:
    async with session_scope(runtime.engine) as session:
        conversation = Conversation(owner_id=owner.user.id, title="reconcile")
        session.add(conversation)
        await session.flush()
        turn, _ = await open_turn(session, owner.user, conversation, "what did the captain say?")
    return turn


async def turn_state(runtime: Runtime, turn: ChatTurn) -> tuple[str, str | None, list[TurnEvent]]:
    async with session_scope(runtime.engine) as session:
        found = await session.get(ChatTurn, turn.id)
        assert found is not None
        events = (await session.execute(select(TurnEvent).where(col(TurnEvent.turn_id) == turn.id))).scalars()
        return found.status, found.error, list(events)


async def test_a_chat_turn_whose_run_was_terminated_ends_with_an_error_event_once(
    runtime: Runtime, make_account: MakeAccount, temporal_client: Client
) -> None:
    """A turn's run terminated in the Temporal UI never runs its own `finish`: without the sweep the turn stayed
    `running` forever, its stream polling for an end and its stop button answering 409."""
    owner = await make_account()
    turn = await turn_row(runtime, owner)
    nowhere = TaskQueues.from_prefix(f"nobody-{uuid.uuid4().hex[:6]}")
    inp = ChatTurnInput(
        turn_id=turn.id,
        conversation_id=turn.conversation_id,
        user_id=owner.user.id,
        question="what did the captain say?",
        providers=[],
        queues=nowhere,
    )
    handle = await start_turn_run(temporal_client, inp, turn.workflow_id)
    assert await reconcile_turn(temporal_client, runtime, turn) is None  # running: nothing to do
    await handle.terminate(reason="operator")
    assert await reconcile_turn(temporal_client, runtime, turn) == "failed"
    status, error, events = await turn_state(runtime, turn)
    assert status == "failed" and "terminated outside Nexus" in (error or "")
    assert [(e.kind, e.data["message"]) for e in events] == [("error", error)]  # the stream's terminal event
    assert await reconcile_turn(temporal_client, runtime, turn) is None  # ended once: no second event
    assert len((await turn_state(runtime, turn))[2]) == 1


async def test_the_sweep_fails_quiet_turns_with_no_run_and_leaves_fresh_ones(
    runtime: Runtime, make_account: MakeAccount, temporal_client: Client
) -> None:
    """An API that died between storing a turn and starting its run left a turn no run will ever end."""
    owner = await make_account()
    stuck, fresh_turn = await turn_row(runtime, owner), await turn_row(runtime, owner)
    async with session_scope(runtime.engine) as session:
        await session.execute(
            update(ChatTurn).where(col(ChatTurn.id) == stuck.id).values(created_at=utcnow() - timedelta(minutes=10))
        )
    assert await reconcile_stale_turns(temporal_client, runtime) >= 1
    status, error, events = await turn_state(runtime, stuck)
    assert status == "failed" and "no run exists" in (error or "") and [e.kind for e in events] == ["error"]
    assert (await turn_state(runtime, fresh_turn))[0] == "running"  # its start may still be on its way
