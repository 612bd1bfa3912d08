"""`GET /metrics`: request metrics by route template, and the work's state read from Postgres and Temporal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from pydantic import SecretStr

from models import JobEvent, MediaItem, MediaJob, MediaStatus, SourceType
from models.base import utcnow
from nexus.core.db import session_scope
from nexus.core.eventlog import append
from nexus.core.orchestration import Queue
from nexus.ops.cleanup import run_cleanup
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden


async def test_metrics_show_requests_by_route_jobs_stages_and_queues(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    me = await make_account()
    async with session_scope(runtime.engine) as session:  # a job that spent 3 s transcribing, now enriching
        media = MediaItem(owner_id=me.user.id, source_type=SourceType.url, source_url="http://x/")
        session.add(media)
        await session.flush()
        job = MediaJob(
            media_id=media.id, owner_id=me.user.id, workflow_id=f"media-{media.id}", stage=MediaStatus.enriching
        )
        session.add(job)
        await session.flush()
        started = utcnow() - timedelta(seconds=3)
        for stage, at in ((MediaStatus.transcribing, started), (MediaStatus.enriching, utcnow())):
            await append(session, job.id, JobEvent(job_id=job.id, stage=stage, created_at=at))  # type: ignore[call-arg]
    assert (await api.get(f"/api/media/{uuid.uuid4()}", headers=me.headers)).status_code == 404

    resp = await api.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    body = resp.text
    # By route template, never the raw path (an id per label would never end).
    assert 'nexus_http_requests_total{method="GET",route="/api/media/{media_id}",status="404"}' in body
    assert "/api/media/" + "0" not in body and "nexus_http_request_duration_seconds_bucket" in body
    assert 'nexus_jobs{stage="enriching"}' in body
    assert 'nexus_stage_duration_seconds{quantile="0.95",stage="transcribing"}' in body
    await run_cleanup(runtime)  # a real cleanup run: its deletions are counted
    assert 'nexus_cleanup_deleted_total{kind="sessions"}' in (await api.get("/metrics")).text
    gpu = runtime.queues.name(Queue.gpu)
    assert f'nexus_queue_backlog{{queue="{gpu}"}}' in body and f'nexus_queue_pollers{{queue="{gpu}"}}' in body

    with overridden(runtime.settings, metrics_token=SecretStr("scrape-me")):
        assert (await api.get("/metrics")).status_code == 401
        assert (await api.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).status_code == 200
    with overridden(runtime.settings, metrics_token=SecretStr("")):  # compose's unset default: as if no token
        assert (await api.get("/metrics")).status_code == 200
    # Through a proxy on this host every client looks local: a forwarded request is not.
    assert (await api.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status_code == 403
    assert (await api.request("BREW", "/metrics")).status_code >= 400  # an odd method...
    assert 'method="BREW"' not in (await api.get("/metrics")).text  # ...is not a label of its own
