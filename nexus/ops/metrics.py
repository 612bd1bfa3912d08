"""Prometheus metrics of the API (`GET /metrics`).

Two kinds. Requests are counted where they happen, in the API process (by route template, never the raw path,
so ids do not explode the label set). Everything about the work — jobs by stage, stage durations, chat time to
first token, token-refresh outcomes, task-queue backlog — is read at scrape time from where it is recorded
(Postgres and Temporal), so any API process answers for every worker, on any machine, with no shared state.
Temporal's own SDK metrics come from each worker's Prometheus endpoint (`NEXUS_WORKER_METRICS_PORT`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from temporalio.client import Client

from nexus.core.db import session_scope
from nexus.core.orchestration import Queue
from nexus.core.temporal import RPC_TIMEOUT
from nexus.ops.service import queue_state
from nexus.runtime import Runtime

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "nexus_http_requests", "API requests by route template, method and status", ["route", "method", "status"],
    registry=REGISTRY,
)  # fmt: skip
LATENCY = Histogram(
    "nexus_http_request_duration_seconds", "API request latency by route template", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY,
)  # fmt: skip
WINDOW = "24 hours"  # durations and first-token times are quantiles over this recent window

# Progress is an event a second within a stage: a stage's time runs from the event that entered it to the next
# event of another stage.
_STAGE_DURATIONS = f"""
    WITH recent AS (
        SELECT job_id, seq, stage, created_at,
               stage IS DISTINCT FROM lag(stage) OVER (PARTITION BY job_id ORDER BY seq) AS entered
        FROM job_events WHERE created_at > now() - interval '{WINDOW}'
    ), steps AS (
        SELECT stage, extract(epoch FROM lead(created_at) OVER (PARTITION BY job_id ORDER BY seq) - created_at) AS s
        FROM recent WHERE entered
    )
    SELECT stage, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s)
    FROM steps WHERE s IS NOT NULL AND stage NOT IN ('completed', 'failed', 'cancelled', 'duplicate')
    GROUP BY stage"""
_FIRST_TOKEN = f"""
    WITH firsts AS (
        SELECT extract(epoch FROM min(e.created_at) - t.created_at) AS s
        FROM chat_turns t JOIN turn_events e ON e.turn_id = t.id AND e.kind = 'token'
        WHERE t.created_at > now() - interval '{WINDOW}' GROUP BY t.id, t.created_at
    )
    SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s)
    FROM firsts"""


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WS"})


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"  # any token is a method to uvicorn: bound the label set
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


class _Snapshot(Collector):
    """Metric families read once for this scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _work_families(runtime: Runtime) -> list[Metric]:
    jobs = GaugeMetricFamily("nexus_jobs", "Media jobs by current stage", labels=["stage"])
    durations = GaugeMetricFamily(
        "nexus_stage_duration_seconds", f"Time spent in each pipeline stage over the last {WINDOW}",
        labels=["stage", "quantile"],
    )  # fmt: skip
    steps = GaugeMetricFamily("nexus_stage_runs", f"Stage runs measured over the last {WINDOW}", labels=["stage"])
    first = GaugeMetricFamily(
        "nexus_chat_first_token_seconds", f"Chat turn start to first streamed token, over the last {WINDOW}",
        labels=["quantile"],
    )  # fmt: skip
    refresh = CounterMetricFamily("nexus_token_refreshes", "OAuth token refreshes by outcome", labels=["outcome"])
    cleaned = CounterMetricFamily(
        "nexus_cleanup_deleted", "Rows and items the cleanup schedule deleted", labels=["kind"]
    )
    async with session_scope(runtime.engine) as session:
        for stage, count in (
            await session.execute(text("SELECT stage, count(*) FROM media_jobs GROUP BY stage"))
        ).all():
            jobs.add_metric([stage], count)
        for stage, count, p50, p95 in (await session.execute(text(_STAGE_DURATIONS))).all():
            durations.add_metric([stage, "0.5"], p50)
            durations.add_metric([stage, "0.95"], p95)
            steps.add_metric([stage], count)
        count, p50, p95 = (await session.execute(text(_FIRST_TOKEN))).one()
        if count:
            first.add_metric(["0.5"], p50)
            first.add_metric(["0.95"], p95)
        outcomes = await session.execute(
            text("SELECT outcome, count(*) FROM audit_log WHERE action = 'integration.refresh' GROUP BY outcome")
        )
        for outcome, n in outcomes.all():
            refresh.add_metric([outcome], n)
        deleted = await session.execute(
            text(
                "SELECT key, sum(value::bigint) FROM audit_log, jsonb_each_text(details) "
                "WHERE action = 'ops.cleanup' AND key <> 'dry_run' GROUP BY key"
            )
        )
        for kind, n in deleted.all():
            cleaned.add_metric([kind], n)
    return [jobs, durations, steps, first, refresh, cleaned]


async def _queue_families(client: Client | None, runtime: Runtime) -> list[Metric]:
    backlog = GaugeMetricFamily("nexus_queue_backlog", "Tasks waiting on each task queue", labels=["queue"])
    age = GaugeMetricFamily("nexus_queue_oldest_task_age_seconds", "Age of the oldest waiting task", labels=["queue"])
    pollers = GaugeMetricFamily("nexus_queue_pollers", "Workers polling each task queue", labels=["queue"])
    if client is not None:
        for queue in (runtime.queues.name(q) for q in Queue):
            try:
                state = await asyncio.wait_for(queue_state(client, queue), RPC_TIMEOUT.total_seconds())
            except Exception:  # Temporal slow or down: the other metrics still answer; this queue is left out
                continue
            backlog.add_metric([queue], state.backlog)
            age.add_metric([queue], state.oldest_s)
            pollers.add_metric([queue], state.pollers)
    return [backlog, age, pollers]


async def exposition(runtime: Runtime, client: Client | None) -> bytes:
    """The text exposition: request metrics, then what the database and Temporal say now."""
    families: Iterable[Metric] = [*await _work_families(runtime), *await _queue_families(client, runtime)]
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(list(families)))
    return generate_latest(REGISTRY) + generate_latest(snapshot)
