"""Worker factory: which workflows and activities each task queue serves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.system import SystemActivities, worker_info
from nexus.core.orchestration import Queue
from nexus.core.settings import Settings
from nexus.ops.fleet import registered
from nexus.runtime import Runtime

log = logging.getLogger("nexus.worker")

# The sandbox still blocks non-deterministic calls; it just stops re-importing every module for every workflow
# run, which cost ~25 ms per workflow task (measured on the chat turn's history). Workers, replay tests and the
# workflow tests all run workflows under this one runner.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


START_TRIES = 30
"""Start-up steps that need Temporal (schedules, the model's backfill) are tried this often, 2 s apart."""


def workflows_for(queue: Queue) -> list[type]:
    """Workflows are orchestration only and cheap: they run on their own queue, so a busy cpu worker (ffmpeg,
    embeddings) never delays a workflow task."""
    from workflows.chat import ChatTurnWorkflow
    from workflows.integrations import TokenRefreshSweepWorkflow, TokenRefreshWorkflow
    from workflows.maintenance import CleanupWorkflow, ReconcileJobsWorkflow, SweepOrphansWorkflow
    from workflows.media import MediaPipelineWorkflow
    from workflows.reembed import ReembedSweepWorkflow, ReembedWorkflow

    if queue is not Queue.workflows:
        return []
    return [
        MediaPipelineWorkflow,
        ChatTurnWorkflow,
        ReconcileJobsWorkflow,
        SweepOrphansWorkflow,
        CleanupWorkflow,
        TokenRefreshWorkflow,
        TokenRefreshSweepWorkflow,
        ReembedWorkflow,
        ReembedSweepWorkflow,
    ]


def activities_for(queue: Queue, runtime: Runtime) -> list[Callable[..., Any]]:
    from activities.chat import ChatActivities
    from activities.integrations import IntegrationActivities
    from activities.media import MediaActivities
    from activities.reembed import ReembedActivities

    media, chat, integrations = MediaActivities(runtime), ChatActivities(runtime), IntegrationActivities(runtime)
    system, reembed = SystemActivities(runtime), ReembedActivities(runtime)
    by_queue: dict[Queue, list[Callable[..., Any]]] = {
        # Local activities run in the worker that runs the workflow: stage bookkeeping and chat context.
        # Token refreshes are short network calls: here, a busy cpu queue (an hour of ffmpeg) never lets a token
        # expire, and at most `workflows_concurrency` run at once per worker.
        Queue.workflows: [media.set_stage, chat.context, chat.finish, integrations.refresh, integrations.sweep],
        Queue.cpu: [
            media.fetch_media,
            media.fingerprint_media,
            media.embed_media,
            media.reconcile_jobs,
            chat.reconcile_turns,
            media.sweep_orphans,
            system.cleanup,
            chat.remember,
            reembed.batch,
            reembed.finish,
            reembed.sweep,
        ],
        Queue.gpu: [media.transcribe_media],
        Queue.llm: [media.enrich_media, chat.generate],
    }
    return [worker_info, *by_queue[queue]]


def build_worker(client: Client, runtime: Runtime, queue: Queue) -> Worker:
    return Worker(
        client,
        task_queue=runtime.queues.name(queue),
        workflows=workflows_for(queue),
        workflow_runner=WORKFLOW_RUNNER,
        # All activities are async and push blocking work (ffmpeg, Whisper, embeddings) to threads themselves.
        activities=activities_for(queue, runtime),
        max_concurrent_activities=runtime.settings.concurrency(queue.value),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )


def sdk_metrics_port(base: int, queues: Sequence[Queue]) -> int:
    """Base port + the position of this process's first queue (workflows, cpu, gpu, llm): a container per queue
    and `nexus up`'s process per queue on one host both get a port each."""
    return base + min(list(Queue).index(q) for q in queues)


def serve_sdk_metrics(settings: Settings, queues: Sequence[Queue]) -> None:
    """The Temporal SDK's own metrics (task latencies, slots, failures, polls) on a Prometheus endpoint: set as
    the default runtime before this process's client connects, so its workers report through it."""
    if not settings.worker_metrics_port:
        return
    from temporalio.runtime import PrometheusConfig, TelemetryConfig
    from temporalio.runtime import Runtime as SdkRuntime

    address = f"{settings.api_host}:{sdk_metrics_port(settings.worker_metrics_port, queues)}"
    telemetry = TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
    SdkRuntime.set_default(SdkRuntime(telemetry=telemetry), error_if_already_set=True)
    log.info("Temporal SDK metrics on http://%s/metrics", address)


async def run_workers(runtime: Runtime, queues: Sequence[Queue]) -> None:
    """Run one worker per queue in this process until cancelled (SIGINT/SIGTERM)."""
    serve_sdk_metrics(runtime.settings, queues)
    client = await runtime.temporal()
    if Queue.workflows in queues:
        from nexus.ops.reembed import start
        from nexus.ops.schedules import ensure_schedules

        # A Temporal server that has just started may accept connections before its namespace exists.
        for attempt in range(START_TRIES):
            try:
                await ensure_schedules(client, runtime)
                # The model the deployment is configured with: a new one is registered and its backfill started.
                await start(runtime, client, runtime.settings.embedding_model)
                break
            except RPCError as exc:
                if attempt == START_TRIES - 1 or exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.UNAVAILABLE):
                    raise
                log.warning("Temporal is not ready yet (%s): trying again in 2 s", exc.message)
                await asyncio.sleep(2)
    # The workflows worker runs a chat turn's context step (memories, retrieval), cpu embeds and remembers, llm
    # answers: each loads the models now rather than on its first job.
    warming = None
    if {Queue.workflows, Queue.cpu, Queue.llm} & set(queues):
        warming = asyncio.create_task(runtime.warm_up(memory=bool({Queue.workflows, Queue.cpu} & set(queues))))
    workers = [build_worker(client, runtime, q) for q in queues]
    log.info("serving task queues: %s", ", ".join(runtime.queues.name(q) for q in queues))
    try:
        async with registered(runtime, client, queues):
            await asyncio.gather(*(w.run() for w in workers))
    finally:
        if warming is not None:
            warming.cancel()
        await runtime.close()
