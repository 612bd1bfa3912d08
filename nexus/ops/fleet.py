"""Which workers serve this deployment, and whether they run with the same configuration as the API.

Workers may run on other machines, and each reads its own environment. A worker that points at another database
still polls Temporal (its jobs stay pending forever); one with its own object directory cannot see an upload; one
with another embedding model writes vectors that no query matches; one with another LLM provider answers
differently. None of that fails by itself, so each worker process records a *fingerprint* of what it runs with
in `worker_registrations` at start and every `worker_heartbeat_s`, and readiness (`GET /health/ready`, `nexus
doctor`) compares every live record with its own, and every poller Temporal sees with the records:

- a fingerprint field that differs (database, object storage, Temporal cluster, embedding model, LLM providers,
  memory extraction, keyring) fails the check, naming the worker and the field (workers on another queue prefix
  serve other queues and are left out);
- a poller with no fresh record fails it too: the worker registered in another database, or stopped reporting
  while it still polls (wedged, or it lost the database);
- a different version is shown, not failed: a rolling upgrade has one for a while.

Identity comes from the components themselves, not from addresses (which legitimately differ between hosts): the
database's `deployment` row, a marker object holding that id in the object store (`system/deployment`, written by
the API if absent), and Temporal's cluster id.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from models.ops import WorkerRegistration
from nexus.core import crypto
from nexus.core.db import make_engine, session_scope
from nexus.core.orchestration import Queue
from nexus.llm import registry
from nexus.llm.models import embedding_identity
from nexus.llm.service import describe_providers
from nexus.ops.service import Check, _run, queue_state
from nexus.runtime import Runtime
from nexus.storage.service import ObjectStore

log = logging.getLogger("nexus.ops")

MARKER_KEY = "system/deployment"
POLLER_LIVE_S = 75.0
"""A poller Temporal last heard from within this is live (an idle worker long-polls for up to a minute)."""
FORGET_AFTER = timedelta(days=1)
"""Records of workers that stopped reporting this long ago are deleted by the next worker to start."""

MUST_AGREE = {
    "database": "database",
    "storage": "object storage",
    "temporal": "Temporal cluster",
    "embedding": "embedding model",
    "llm": "LLM providers",
    "memory_infer": "memory fact extraction",
    "keyring": "secret keyring",
}


class Fingerprint(BaseModel):
    version: str
    database: str  # the deployment id of the database this process uses
    storage: str  # the deployment id in its object store's marker, or what it found instead
    storage_url: str  # shown only: hosts may reach one store by different addresses
    temporal: str  # cluster id / namespace
    queue_prefix: str
    embedding: str  # name@digest/dims
    llm: str
    memory_infer: bool
    keyring: str


def disagreements(expected: Fingerprint, actual: Fingerprint) -> list[str]:
    """What a worker does differently from the process that checks it, as `field: worker's vs ours`."""
    return [
        f"{label}: {getattr(actual, key)} (here: {getattr(expected, key)})"
        for key, label in MUST_AGREE.items()
        if getattr(actual, key) != getattr(expected, key)
    ]


def version() -> str:
    try:
        return importlib.metadata.version("nexus")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def _deployment_id(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT id FROM deployment ORDER BY created_at LIMIT 1"))).scalar_one_or_none()
    if found is None:
        raise RuntimeError("the database has no deployment row: run `nexus migrate`")
    return str(found)


def read_marker(store: ObjectStore) -> str | None:
    if not store.exists(MARKER_KEY):
        return None
    return store.get_bytes(MARKER_KEY).decode().strip()


def _storage_identity(store: ObjectStore, url: str) -> str:
    marker = read_marker(store)
    return marker if marker else f"no deployment marker in {url}"


async def stamp_store(engine: AsyncEngine, store: ObjectStore) -> str:
    """Put the database's deployment id in the object store if it has none (`nexus migrate`, `nexus up`, the API):
    workers compare their store's marker with it from their first report on. Returns the store's marker: one that
    holds another id belongs to another deployment, and is reported, never overwritten."""
    deployment = await _deployment_id(engine)

    def go() -> str:
        marker = read_marker(store)
        if marker is None:
            store.put_bytes(MARKER_KEY, deployment.encode(), "text/plain")
            return deployment
        return marker

    return await asyncio.to_thread(go)


_cluster_ids: dict[int, str] = {}


async def _temporal_identity(client: Client) -> str:
    key = id(client)
    if key not in _cluster_ids:
        info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
        _cluster_ids[key] = info.cluster_id or "unknown"
    return f"{_cluster_ids[key]}/{client.namespace}"


async def fingerprint(
    runtime: Runtime, client: Client, *, write_marker: bool = False, engine: AsyncEngine | None = None
) -> Fingerprint:
    """This process's fingerprint. `write_marker`: the API's, which puts the marker in its store if absent.
    `engine`: the heartbeat's own (default: the runtime's)."""
    s = runtime.settings
    engine = engine or runtime.engine
    database = await _deployment_id(engine)
    if write_marker:
        storage = await stamp_store(engine, runtime.store)
    else:
        storage = await asyncio.to_thread(_storage_identity, runtime.store, s.objects_url)
    return Fingerprint(
        version=version(),
        database=database,
        storage=storage,
        storage_url=s.objects_url,
        temporal=await _temporal_identity(client),
        queue_prefix=s.task_queue_prefix,
        embedding=str(await asyncio.to_thread(embedding_identity, s)),
        llm=describe_providers(s),
        memory_infer=runtime.memory.infer,
        keyring=crypto.keyring().fingerprint(),
    )


async def _record(
    engine: AsyncEngine, worker_id: uuid.UUID, identity: str, queues: Sequence[Queue], fp: Fingerprint
) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": worker_id,
        "identity": identity,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": [q.value for q in queues],
        "fingerprint": fp.model_dump(),
        "started_at": now,
        "heartbeat_at": now,
    }
    stmt = insert(WorkerRegistration).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={"fingerprint": stmt.excluded.fingerprint, "heartbeat_at": now}
    )
    async with session_scope(engine) as session:
        await session.execute(stmt)


@contextlib.asynccontextmanager
async def registered(runtime: Runtime, client: Client, queues: Sequence[Queue]) -> AsyncIterator[uuid.UUID]:
    """Record this worker process while it runs (on start, then every heartbeat; removed when it stops cleanly).

    A failed report is logged and retried at the next beat, never fatal: a worker keeps serving through a short
    database outage, and readiness shows the gap. The reports use a connection of their own, so a busy pool never
    delays them and they never take a connection from the work."""
    worker_id = uuid.uuid4()
    identity = client.identity
    engine = make_engine(runtime.database_url, pool_size=1, max_overflow=0)

    async def beat() -> None:
        await _record(engine, worker_id, identity, queues, await fingerprint(runtime, client, engine=engine))

    async def loop() -> None:
        failing = False
        while True:
            try:
                await beat()
                if failing:
                    log.info("worker registration restored")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("could not record this worker's configuration: %s", exc)
                failing = True
            await asyncio.sleep(runtime.settings.worker_heartbeat_s)

    with contextlib.suppress(Exception):
        async with session_scope(engine) as session:
            cutoff = datetime.now(UTC) - FORGET_AFTER
            await session.execute(delete(WorkerRegistration).where(col(WorkerRegistration.heartbeat_at) < cutoff))
    task = asyncio.create_task(loop())
    try:
        yield worker_id
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                async with session_scope(engine) as session:
                    await session.execute(delete(WorkerRegistration).where(col(WorkerRegistration.id) == worker_id))
        await engine.dispose()


async def live_pollers(client: Client, name: str) -> set[str]:
    """Identities of the workers Temporal has heard from on queue `name` (either task type) within POLLER_LIVE_S."""
    state = await queue_state(client, name)
    now = time.time()
    return {identity for identity, seen in state.last_poll.items() if now - seen <= POLLER_LIVE_S}


async def fleet_problems(runtime: Runtime, client: Client, expected: Fingerprint) -> tuple[list[str], list[str]]:
    """(problems, workers): what fails the check, and a line per live worker for the detail."""
    stale_after = timedelta(seconds=runtime.settings.worker_stale_after_s)
    now = datetime.now(UTC)
    async with session_scope(runtime.engine) as session:
        rows = list((await session.execute(select(WorkerRegistration))).scalars())
    # Workers on another queue prefix serve other queues (another deployment sharing the database, or a worker
    # misconfigured so: then our queues show no poller, which the queue checks report).
    rows = [r for r in rows if r.fingerprint.get("queue_prefix") == expected.queue_prefix]
    live = [r for r in rows if now - r.heartbeat_at <= stale_after]
    problems: list[str] = []
    workers: list[str] = []
    this_process = (socket.gethostname(), os.getpid())
    for row in live:
        actual = Fingerprint.model_validate(row.fingerprint)
        where = f"worker {row.identity} ({','.join(row.queues)})"
        if (row.host, row.pid) != this_process:  # workers in this process read this process's settings
            problems += [f"{where} differs in {d}" for d in disagreements(expected, actual)]
        note = f", version {actual.version} (here: {expected.version})" if actual.version != expected.version else ""
        workers.append(f"{row.identity} ({','.join(row.queues)}{note})")
    registered = {r.identity for r in live}
    last_seen = {r.identity: r.heartbeat_at for r in rows}
    for queue in Queue:
        for identity in sorted(await live_pollers(client, runtime.queues.name(queue)) - registered):
            if identity in last_seen:
                age = (now - last_seen[identity]).total_seconds()
                problems.append(
                    f"worker {identity} polls {queue.value} but last reported {age:.0f} s ago: it is stuck, or has "
                    "lost the database"
                )
            else:
                problems.append(
                    f"worker {identity} polls {queue.value} but is not registered in this database: it uses another "
                    "NEXUS_DATABASE_URL (or runs a version without registration)"
                )
    return problems, workers


class FleetMismatch(RuntimeError):
    """Workers that do not run with this process's configuration."""


async def check_workers(runtime: Runtime, client: Client | None) -> Check:
    """Every worker process agrees with this one (database, storage, Temporal, models, providers, keyring), and
    every poller Temporal sees has reported to this database lately."""

    async def probe() -> str:
        if client is None:
            raise ConnectionError("Temporal is not reachable")
        ours = await fingerprint(runtime, client, write_marker=True)
        if ours.storage != ours.database:
            raise FleetMismatch(
                f"object storage {ours.storage_url} belongs to another deployment (its marker {MARKER_KEY} "
                f"says {ours.storage}; this database is {ours.database})"
            )
        active = await registry.adopt(runtime.engine, runtime.settings.embedding_model)
        try:  # this process answers queries with the index's active model: it must have that model's files
            await asyncio.to_thread(registry.check_loadable, active)
        except registry.ModelUnavailable as exc:
            raise FleetMismatch(str(exc)) from exc
        problems, workers = await fleet_problems(runtime, client, ours)
        if problems:
            raise FleetMismatch("; ".join(problems))
        return f"{len(workers)} worker process(es) agree with this one: {', '.join(workers) or 'none registered'}"

    return await _run("workers", probe)
