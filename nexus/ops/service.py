"""Component checks shared by `GET /health/ready` and `nexus doctor` (one implementation of each check)."""

from __future__ import annotations

import asyncio
import functools
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from nexus.core.orchestration import Queue, TaskQueues
from nexus.core.settings import Settings
from nexus.storage.service import ObjectStore

CHECK_TIMEOUT_S = 3.0  # readiness must answer fast while a dependency is frozen


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


async def _run(name: str, probe: Callable[[], Awaitable[str]]) -> Check:
    try:
        return Check(name, True, await asyncio.wait_for(probe(), CHECK_TIMEOUT_S))
    except TimeoutError:
        return Check(name, False, f"timed out after {CHECK_TIMEOUT_S:.0f}s")
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}"[:1500])


async def check_database(engine: AsyncEngine) -> Check:
    async def probe() -> str:
        async with engine.connect() as conn:
            version = (
                await conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
            ).scalar_one_or_none()
            if version is None:
                raise RuntimeError("the `vector` extension is not installed: run `nexus migrate`")
            server = (await conn.execute(text("SHOW server_version"))).scalar_one()
        return f"PostgreSQL {server}, pgvector {version}"

    return await _run("database", probe)


async def check_temporal(client: Client | None, target: str) -> Check:
    async def probe() -> str:
        if client is None:
            raise ConnectionError(f"not connected to {target}")
        await client.service_client.check_health()
        return f"{target} namespace={client.namespace}"

    return await _run("temporal", probe)


async def check_storage(store: ObjectStore, url: str) -> Check:
    async def probe() -> str:
        await store.acheck_writable()
        return url

    return await _run("storage", probe)


@dataclass(frozen=True)
class QueueState:
    """A task queue as Temporal sees it: workers polling, tasks waiting, and how long the oldest has waited."""

    name: str
    pollers: int
    backlog: int
    oldest_s: float
    last_poll: dict[str, float] = field(
        default_factory=dict
    )  # poller identity -> when Temporal last heard it (epoch s)


async def queue_state(client: Client, name: str) -> QueueState:
    pollers = backlog = 0
    oldest = 0.0
    last_poll: dict[str, float] = {}
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind, report_stats=True
            )
        )
        pollers = max(pollers, len(resp.pollers))
        for poller in resp.pollers:
            seen = poller.last_access_time.ToSeconds() if poller.HasField("last_access_time") else time.time()
            last_poll[poller.identity] = max(last_poll.get(poller.identity, 0.0), seen)
        if resp.HasField("stats"):
            backlog += resp.stats.approximate_backlog_count
            oldest = max(oldest, resp.stats.approximate_backlog_age.ToTimedelta().total_seconds())
    return QueueState(name, pollers, backlog, oldest, last_poll)


async def check_pollers(client: Client | None, queues: TaskQueues) -> list[Check]:
    """Each queue has a worker; the detail shows its backlog (a gpu queue starving on a CPU machine shows here,
    and its runs fail loudly when the queue wait passes its schedule-to-start timeout)."""

    async def probe(name: str) -> str:
        if client is None:
            raise ConnectionError("Temporal is not reachable")
        state = await queue_state(client, name)
        if not state.pollers:
            raise RuntimeError(f"no worker is polling {name}: start `nexus worker --queue {name.split('-')[-1]}`")
        return f"{name}: {state.pollers} poller(s), {state.backlog} task(s) waiting, oldest {state.oldest_s:.0f} s"

    return list(
        await asyncio.gather(*(_run(f"queue:{q.value}", functools.partial(probe, queues.name(q))) for q in Queue))
    )


def check_binary(name: str, hint: str) -> Check:
    path = shutil.which(name)
    return Check(name, path is not None, path or f"not found on PATH: {hint}")


def check_chromaprint() -> Check:
    try:
        import acoustid

        if not acoustid.have_chromaprint:
            raise ImportError("libchromaprint not loadable")
        return Check("chromaprint", True, "libchromaprint via pyacoustid")
    except Exception as exc:
        return Check("chromaprint", False, f"{exc}: install libchromaprint1 (apt-get install ffmpeg)")


def check_models(settings: Settings) -> list[Check]:
    from nexus.llm.models import embedding_model_path, whisper_model_path

    checks = []
    for name, locate in (("whisper model", whisper_model_path), ("embedding model", embedding_model_path)):
        try:
            path = locate(settings)
            checks.append(Check(name, path.exists(), str(path)))
        except Exception as exc:
            checks.append(Check(name, False, str(exc)))
    return checks
