"""Re-embedding the archive with a new model (nexus/ops/reembed.py): orchestration only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reembed import ReembedActivities
    from nexus.core.errors import NON_RETRYABLE_TYPES
    from nexus.core.orchestration import REEMBED_SWEEP_WORKFLOW, REEMBED_WORKFLOW
    from nexus.llm.contracts import BatchInput, ReembedInput, ReembedReport, SweepReport
    from nexus.media.contracts import MaintenanceInput
    from workflows.shared import DB_RETRY

# A backfill outlasts anything: a host that cannot load the model (ModelUnavailable) or a database outage is
# retried until fixed, visibly in the run's pending activity; batches are idempotent.
BACKFILL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
BATCHES_PER_RUN = 200
"""Then continue-as-new: a history stays small however large the archive (each batch is ~6 events)."""
FINISH_TRIES = 5


@workflow.defn(name=REEMBED_WORKFLOW)
class ReembedWorkflow:
    """Backfill one `building` model's vectors in batches (cursor: the last chunk id), then switch to it.

    Survives worker and server kills: each batch is an activity whose result (the cursor) is in the history, and a
    retried batch embeds only passages that still lack a vector. Search keeps answering from the active model until
    `reembed.finish` switches atomically; a writer racing the switch makes it report `missing`, and it runs again."""

    def __init__(self) -> None:
        self.embedded = 0
        self.after: str | None = None

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"embedded": self.embedded, "after": self.after}

    @workflow.run
    async def run(self, inp: ReembedInput) -> ReembedReport:
        self.embedded, self.after = inp.embedded, inp.after
        for _ in range(BATCHES_PER_RUN):
            batch = await workflow.execute_activity_method(
                ReembedActivities.batch,
                BatchInput(model_id=inp.model_id, after=self.after, size=inp.batch_size),
                task_queue=inp.queues.cpu,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=BACKFILL_RETRY,
                summary=f"embed passages after {self.after or 'the start'}",
            )
            self.embedded += batch.embedded
            self.after = batch.last
            if batch.finished:
                break
        else:
            workflow.continue_as_new(inp.model_copy(update={"after": self.after, "embedded": self.embedded}))
        for attempt in range(FINISH_TRIES):
            done = await workflow.execute_activity_method(
                ReembedActivities.finish,
                inp.model_id,
                task_queue=inp.queues.cpu,
                # The HNSW build over a large archive can take hours; the heartbeat, not this bound, notices a
                # dead worker, and a retry waits for a build still running in Postgres instead of restarting it.
                start_to_close_timeout=timedelta(hours=6),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=BACKFILL_RETRY,
                summary="catch up, copy memories, verify, switch",
            )
            self.embedded += done.caught_up
            if done.switched or done.missing == 0:
                break
            await workflow.sleep(timedelta(seconds=2 * (attempt + 1)))
        return ReembedReport(
            model_id=inp.model_id,
            embedded=self.embedded,
            switched=done.switched,
            active=done.active,
            retired=done.retired,
            memories=done.memories,
        )


@workflow.defn(name=REEMBED_SWEEP_WORKFLOW)
class ReembedSweepWorkflow:
    """Daily: restart unfinished backfills, fill gaps of the active model, copy stray memories, drop retired
    models' vectors after their grace period."""

    @workflow.run
    async def run(self, inp: MaintenanceInput) -> SweepReport:
        return await workflow.execute_activity_method(
            ReembedActivities.sweep,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=25),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            schedule_to_close_timeout=timedelta(minutes=28),
        )
