"""Job and turn event logs on real Postgres: every event reaches a follower exactly once and in order, a slow
follower holds no pooled connection, and a job's progress and attempts tell the truth after a retried step."""

from __future__ import annotations

import asyncio
import uuid

from models import JobEvent, MediaItem, MediaJob, MediaStatus, SourceType
from nexus.core.db import session_maker, session_scope
from nexus.core.eventlog import append, follow
from nexus.media.repository import record
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def new_job(runtime: Runtime, make_account: MakeAccount) -> uuid.UUID:
    owner = await make_account()
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner.user.id, source_type=SourceType.url, source_url="http://example.test/a")
        session.add(media)
        await session.flush()
        job = MediaJob(media_id=media.id, owner_id=owner.user.id, workflow_id=f"media-{media.id}")
        session.add(job)
    return job.id


def event(job_id: uuid.UUID, message: str, terminal: bool = False) -> JobEvent:
    return JobEvent(job_id=job_id, stage=MediaStatus.transcribing, message=message, terminal=terminal)


async def test_concurrent_writers_cannot_make_a_follower_skip_an_event(
    runtime: Runtime, make_account: MakeAccount
) -> None:
    """The first writer draws its number and commits late; the second commits at once. A follower that read the
    second before the first committed would move its cursor past the first and never deliver it."""
    job_id = await new_job(runtime, make_account)
    received: list[str] = []

    async def reader() -> None:
        async for e in follow(
            runtime.engine, JobEvent, MediaJob, JobEvent.job_id, job_id, is_terminal=lambda e: e.terminal
        ):
            received.append(e.message or "")

    async def write(message: str, terminal: bool = False) -> None:
        async with session_scope(runtime.engine) as session:
            await append(session, job_id, event(job_id, message, terminal))

    slow = session_maker(runtime.engine)()
    await append(slow, job_id, event(job_id, "first"))  # numbered, not yet committed
    second = asyncio.create_task(write("second"))
    following = asyncio.create_task(reader())
    await asyncio.sleep(1.0)  # the follower has polled at least once; the second writer had time to commit
    await slow.commit()
    await slow.close()
    await second
    await write("done", terminal=True)
    await asyncio.wait_for(following, 10)
    assert received == ["first", "second", "done"]


async def test_a_slow_follower_holds_no_pooled_connection(runtime: Runtime, make_account: MakeAccount) -> None:
    job_id = await new_job(runtime, make_account)
    async with session_scope(runtime.engine) as session:
        await append(session, job_id, event(job_id, "a"), event(job_id, "b"), event(job_id, "c", terminal=True))
    idle = runtime.engine.pool.checkedout()  # type: ignore[attr-defined]
    stream = follow(runtime.engine, JobEvent, MediaJob, JobEvent.job_id, job_id, is_terminal=lambda e: e.terminal)
    first = await anext(stream)  # the client is now busy with this event, mid-batch
    assert first.message == "a"
    assert runtime.engine.pool.checkedout() == idle  # type: ignore[attr-defined]
    assert [e.message async for e in stream] == ["b", "c"]


async def test_progress_never_goes_back_and_a_retried_step_counts_as_an_attempt(
    runtime: Runtime, make_account: MakeAccount
) -> None:
    job_id = await new_job(runtime, make_account)

    async def job() -> MediaJob:
        async with session_scope(runtime.engine) as session:
            found = await session.get(MediaJob, job_id)
            assert found is not None
            return found

    await record(runtime.engine, job_id, MediaStatus.transcribing)  # the workflow enters the stage
    await record(runtime.engine, job_id, MediaStatus.transcribing, 0.5, attempt=1)
    assert ((await job()).progress, (await job()).attempts) == (50, 1)
    # The worker died; Temporal runs the step again, which starts its own count from zero.
    await record(runtime.engine, job_id, MediaStatus.transcribing, 0.0, attempt=2)
    await record(runtime.engine, job_id, MediaStatus.transcribing, 0.1, attempt=2)
    now = await job()
    assert (now.progress, now.attempts, now.stage_attempt) == (50, 2, 2)
    await record(runtime.engine, job_id, MediaStatus.transcribing, 0.9, attempt=2)
    await record(runtime.engine, job_id, MediaStatus.enriching)
    now = await job()
    assert (now.progress, now.attempts, now.stage_attempt) == (80, 2, 1)
    async with session_scope(runtime.engine) as session:
        from sqlalchemy import select

        progress = (
            (await session.execute(select(JobEvent.progress).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)))
            .scalars()
            .all()
        )
    assert progress == sorted(progress), progress  # what a streaming client saw never went backwards
    await record(runtime.engine, job_id, MediaStatus.pending)  # a new run starts over
    assert (await job()).progress == 0
