"""Readiness sees the workers: each records its configuration, and one that differs, or polls without reporting to
this database, or reports from another deployment's storage, fails `/health/ready` with its name and the field."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import delete, text
from temporalio.worker import Worker

from models.ops import WorkerRegistration
from nexus.core.db import session_scope
from nexus.core.orchestration import Queue, TaskQueues
from nexus.ops import fleet
from nexus.runtime import Runtime
from nexus.storage.service import LocalStore
from workers.main import activities_for


async def _register(runtime: Runtime, identity: str, fingerprint: fleet.Fingerprint, *, age_s: float = 0) -> uuid.UUID:
    row_id = uuid.uuid4()
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    async with session_scope(runtime.engine) as session:
        session.add(
            WorkerRegistration(
                id=row_id,
                identity=identity,
                host="elsewhere",
                pid=1,
                queues=["llm"],
                fingerprint=fingerprint.model_dump(),
                started_at=at,
                heartbeat_at=at,
            )
        )
    return row_id


async def _unregister(runtime: Runtime, row_id: uuid.UUID) -> None:
    async with session_scope(runtime.engine) as session:
        await session.execute(delete(WorkerRegistration).where(WorkerRegistration.id == row_id))  # type: ignore[arg-type]


async def test_ready_lists_the_registered_workers_and_the_store_carries_the_deployment_marker(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await runtime.temporal()
    for _ in range(30):  # the session's workers may still be registering (a stalled disk once made it slow)
        workers = (await api.get("/health/ready")).json()["components"]["workers"]
        if workers["ok"]:
            break
        await asyncio.sleep(0.5)
    assert workers["ok"], workers
    assert f"{client.identity} (workflows,cpu,gpu,llm)" in workers["detail"]
    async with runtime.engine.connect() as conn:
        deployment = str((await conn.execute(text("SELECT id FROM deployment"))).scalar_one())
    assert fleet.read_marker(runtime.store) == deployment
    for _ in range(50):  # the record is at most a beat old
        async with runtime.engine.connect() as conn:
            recorded = (
                await conn.execute(
                    text("SELECT fingerprint FROM worker_registrations WHERE identity = :i"), {"i": client.identity}
                )
            ).scalar_one()
        if recorded["storage"] == deployment:
            break
        await asyncio.sleep(0.1)
    assert recorded["database"] == recorded["storage"] == deployment
    assert recorded["embedding"].startswith("all-MiniLM-L6-v2@") and recorded["embedding"].endswith("/384d")
    assert recorded["llm"] == "extractive" and "key" not in str(recorded["keyring"])


async def test_a_worker_with_another_model_or_provider_fails_readiness_by_name(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ours = await fleet.fingerprint(runtime, await runtime.temporal())
    odd = ours.model_copy(update={"embedding": "all-mpnet-base-v2@abc/768d", "llm": "gemini:gemini-2.5-flash"})
    row = await _register(runtime, "4242@gpu-box-7", odd)
    try:
        resp = await api.get("/health/ready")
        assert resp.status_code == 503
        body = resp.json()
        assert body["failing"] == ["workers"]
        detail = body["components"]["workers"]["detail"]
        assert "worker 4242@gpu-box-7 (llm) differs in embedding model: all-mpnet-base-v2@abc/768d" in detail
        assert "LLM providers: gemini:gemini-2.5-flash (here: extractive)" in detail
    finally:
        await _unregister(runtime, row)
    assert (await api.get("/health/ready")).status_code == 200

    # A version difference is shown (a rolling upgrade has one for a while) but does not fail readiness; a worker
    # on another queue prefix serves other queues and is left out.
    row = await _register(runtime, "4243@gpu-box-7", ours.model_copy(update={"version": "0.0.1"}))
    other = await _register(runtime, "4244@lab", odd.model_copy(update={"queue_prefix": "another-deployment"}))
    try:
        resp = await api.get("/health/ready")
        assert resp.status_code == 200, resp.text
        detail = resp.json()["components"]["workers"]["detail"]
        assert "4243@gpu-box-7 (llm, version 0.0.1" in detail and "4244@lab" not in detail
    finally:
        await _unregister(runtime, row)
        await _unregister(runtime, other)


async def test_a_poller_that_never_registered_or_stopped_reporting_is_named(runtime: Runtime) -> None:
    """A worker on another database polls our queues but records itself elsewhere. On a queue prefix of its own so
    the session's readiness is untouched (Temporal lists a poller for a while after it stops)."""
    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    isolated = Runtime(
        settings=runtime.settings.model_copy(update={"task_queue_prefix": prefix}),
        engine=runtime.engine,
        store=runtime.store,
        queues=TaskQueues.from_prefix(prefix),
        database_url=runtime.database_url,
    )
    client = await runtime.temporal()
    queue = isolated.queues.name(Queue.llm)
    worker = Worker(client, task_queue=queue, activities=activities_for(Queue.llm, isolated), identity="777@elsewhere")
    async with worker:
        for _ in range(100):
            if "777@elsewhere" in await fleet.live_pollers(client, queue):
                break
            await asyncio.sleep(0.1)
        check = await fleet.check_workers(isolated, client)
        assert not check.ok
        assert "worker 777@elsewhere polls llm but is not registered in this database" in check.detail

        row = await _register(isolated, "777@elsewhere", await fleet.fingerprint(isolated, client), age_s=600)
        try:
            check = await fleet.check_workers(isolated, client)
            assert not check.ok
            assert "worker 777@elsewhere polls llm but last reported 600 s ago" in check.detail
        finally:
            await _unregister(isolated, row)


async def test_storage_of_another_deployment_or_none_is_a_mismatch(runtime: Runtime, tmp_path: Path) -> None:
    client = await runtime.temporal()
    ours = await fleet.fingerprint(runtime, client)
    # A worker writing to a directory of its own finds no marker there.
    lonely = Runtime(
        settings=runtime.settings.model_copy(update={"storage_url": f"file://{tmp_path / 'own'}"}),
        engine=runtime.engine,
        store=LocalStore(tmp_path / "own"),
        queues=runtime.queues,
        database_url=runtime.database_url,
    )
    theirs = await fleet.fingerprint(lonely, client)
    assert theirs.storage == f"no deployment marker in file://{tmp_path / 'own'}"
    assert fleet.disagreements(ours, theirs) == [f"object storage: {theirs.storage} (here: {ours.database})"]

    # The API's own store holding another deployment's marker fails the check (and is never overwritten).
    foreign = LocalStore(tmp_path / "foreign")
    foreign.put_bytes(fleet.MARKER_KEY, b"00000000-0000-0000-0000-000000000001")
    lonely.store = foreign
    check = await fleet.check_workers(lonely, client)
    assert not check.ok and "belongs to another deployment" in check.detail
    assert fleet.read_marker(foreign) == "00000000-0000-0000-0000-000000000001"
