"""Session-wide real stack: Temporal dev server, embedded Postgres (migrated), workers on unique queues, API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from models import User
from nexus.core.db import session_scope
from nexus.core.embedded import EmbeddedPostgres
from nexus.core.orchestration import Queue
from nexus.core.settings import Settings
from nexus.core.temporal import connect
from nexus.identity.service import create_user, issue_api_key
from nexus.ops.fleet import registered
from nexus.ops.migrate import upgrade_async
from nexus.runtime import Runtime
from tests.harness import LiveServer, TemporalServer, isolated_settings, wait_ready
from workers.main import build_worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "False")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nexus")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return isolated_settings(data_dir)


@pytest.fixture(scope="session")
def temporal_server(settings: Settings) -> Iterator[TemporalServer]:
    server = TemporalServer(settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def database_url(settings: Settings) -> AsyncIterator[str]:
    pg = EmbeddedPostgres(settings.pg_dir)
    url = pg.start()
    await upgrade_async(url)
    yield url
    pg.stop()


@pytest.fixture(scope="session")
async def runtime(settings: Settings, database_url: str, temporal_server: TemporalServer) -> AsyncIterator[Runtime]:
    live = settings.model_copy(update={"database_url": database_url, "temporal_address": settings.temporal_target})
    rt = Runtime.build(live)
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
async def workers(runtime: Runtime) -> AsyncIterator[None]:
    """One in-process worker per queue, on this session's unique queue names."""
    client = await runtime.temporal()
    running = [build_worker(client, runtime, q) for q in Queue]
    tasks = [asyncio.create_task(w.run()) for w in running]
    async with registered(runtime, client, list(Queue)):  # as `nexus worker` does: readiness checks the record
        yield
        await asyncio.gather(*(w.shutdown() for w in running), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
async def live_api(runtime: Runtime, workers: None) -> AsyncIterator[LiveServer]:
    from tests.harness import free_port

    port = free_port()
    runtime.settings.public_url = f"http://127.0.0.1:{port}"  # sign-in redirects and trusted origins
    async with LiveServer(create_app(runtime.settings, runtime), port) as server:
        async with httpx.AsyncClient(base_url=server.url) as probe:
            resp = await wait_ready(probe)
            assert resp.status_code == 200, resp.text
        yield server


@pytest.fixture
async def api(live_api: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as client:
        yield client


@dataclass
class Account:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeAccount = Callable[..., Awaitable[Account]]


@pytest.fixture
async def make_account(runtime: Runtime) -> MakeAccount:
    """A fresh user with an API key. Every test gets its own users, so tests never see each other's rows."""

    async def make(email: str | None = None, *, admin: bool = False) -> Account:
        async with session_scope(runtime.engine) as session:
            user = await create_user(session, email or f"{uuid.uuid4().hex[:10]}@example.test", is_admin=admin)
            issued = await issue_api_key(session, user)
        return Account(user, issued.token)

    return make


@pytest.fixture
async def temporal_client(runtime: Runtime) -> Client:
    return await connect(runtime.settings)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.media_fixtures import make_clips

    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def media_server(clips: dict[str, Path]) -> Iterator[object]:
    from tests.media_fixtures import MediaServer

    with MediaServer(next(iter(clips.values())).parent) as server:
        yield server


async def follow_job(api: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float = 180) -> list[dict]:
    """Read the job's SSE stream to its terminal event; returns the events in arrival order."""
    import json

    events: list[dict] = []
    async with asyncio.timeout(timeout):
        async with api.stream("GET", f"/api/jobs/{job_id}/events", headers=headers, timeout=None) as resp:
            assert resp.status_code == 200, await resp.aread()
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
    return events


@contextlib.contextmanager
def overridden(settings: Settings, **values: object) -> Iterator[None]:
    """Change live settings (shared by the in-process API and workers) for the duration of a test."""
    saved = {k: getattr(settings, k) for k in values}
    for k, v in values.items():
        setattr(settings, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(settings, k, v)


async def activity_attempts(client: Client, workflow_id: str, activity_name: str) -> list[int]:
    """For each execution of `activity_name` in the latest run, the attempt it finished on.

    Temporal writes one ActivityTaskStarted per execution, carrying the attempt count: retries show up there
    (and in the UI's "attempt" column), not as separate events."""
    scheduled: dict[int, str] = {}
    attempts: list[int] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if scheduled.get(attrs.scheduled_event_id) == activity_name:
                attempts.append(attrs.attempt)
    return attempts


async def wait_stage(
    api: httpx.AsyncClient, headers: dict[str, str], job_id: str, stages: set[str], timeout: float = 120
) -> dict:
    """Poll the job until it reaches one of `stages` (polling, because the work happens in other processes)."""
    async with asyncio.timeout(timeout):
        while (job := (await api.get(f"/api/jobs/{job_id}", headers=headers)).json())["stage"] not in stages:
            await asyncio.sleep(0.1)
    return job


async def read_sse(resp: httpx.Response, stop_after: int | None = None) -> list[tuple[str, dict]]:
    """(event, data) pairs from an SSE response, until it ends (or `stop_after` events)."""
    import json

    events: list[tuple[str, dict]] = []
    name = "message"
    async for line in resp.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
            name = "message"
            if stop_after and len(events) >= stop_after:
                break
    return events


async def chat_turn(
    api: httpx.AsyncClient, headers: dict[str, str], timeout: float = 120, **body: object
) -> list[tuple[str, dict]]:
    async with asyncio.timeout(timeout):
        async with api.stream("POST", "/api/chat", json=body, headers=headers, timeout=None) as resp:
            assert resp.status_code == 200, (await resp.aread()).decode()
            return await read_sse(resp)


async def account_with_clips(
    runtime: Runtime, base_url: str, clips: dict[str, Path], names: list[str], prefix: str
) -> tuple[dict[str, str], dict[str, str]]:
    """A new user whose archive holds `names` clips, fully processed: (auth headers, clip name -> media id)."""
    async with session_scope(runtime.engine) as session:
        user = await create_user(session, f"{prefix}-{uuid.uuid4().hex[:8]}@example.test")
        token = (await issue_api_key(session, user)).token
    headers = {"Authorization": f"Bearer {token}"}
    media = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
        for name in names:
            with clips[name].open("rb") as fh:
                resp = await api.post("/api/media/upload", files={"file": (clips[name].name, fh)}, headers=headers)
            events = await follow_job(api, headers, resp.json()["job_id"])
            assert events[-1]["stage"] == "completed", events[-1]
            media[name] = resp.json()["media_id"]
    return headers, media
