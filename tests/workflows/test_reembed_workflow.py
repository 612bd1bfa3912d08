"""ReembedWorkflow and the daily sweep against mocked activities on the time-skipping server: batches follow the
cursor until none is left, a large archive continues as new with its progress, a failed batch is retried with the
same cursor, a switch that found a gap runs again, and the sweep's report is its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client

from nexus.core.orchestration import REEMBED_SWEEP_WORKFLOW, REEMBED_WORKFLOW, Queue, TaskQueues
from nexus.llm.contracts import BatchInput, BatchResult, FinishResult, ReembedInput, ReembedReport, SweepReport
from nexus.media.contracts import MaintenanceInput
from tests.workflows.mocks import running_workers, transient
from workflows import reembed


@dataclass
class ReembedFakes:
    """An archive of `total` passages in id order ("c001", ...), embedded `batch` at a time."""

    total: int
    failures: list[BaseException] = field(default_factory=list)
    finish_missing: list[int] = field(default_factory=list)  # a finish that reports a gap (then switches)
    batches: list[tuple[str | None, int]] = field(default_factory=list)  # (cursor asked for, attempt)
    finishes: int = 0

    @activity.defn(name="reembed.batch")
    async def batch(self, inp: BatchInput) -> BatchResult:
        self.batches.append((inp.after, activity.info().attempt))
        if self.failures:
            raise self.failures.pop(0)
        start = int(inp.after[1:]) if inp.after else 0
        end = min(self.total, start + inp.size)
        return BatchResult(
            embedded=end - start, last=f"c{end:03d}" if end else inp.after, finished=end - start < inp.size
        )

    @activity.defn(name="reembed.finish")
    async def finish(self, model_id: int) -> FinishResult:
        self.finishes += 1
        if self.finish_missing:
            return FinishResult(switched=False, missing=self.finish_missing.pop(0), active="old@1/384d")
        return FinishResult(
            switched=True, missing=0, active=f"new@{model_id}/64d", retired="old@1/384d", caught_up=2, memories=5
        )

    @activity.defn(name="reembed.sweep")
    async def sweep(self) -> SweepReport:
        return SweepReport(started=[7], active_backfilled=3, memories_copied=1, dropped=[2])

    def by_queue(self) -> dict[Queue, list[Any]]:
        return {q: [] for q in Queue} | {Queue.cpu: [self.batch, self.finish, self.sweep]}


async def _run(client: Client, queues: TaskQueues, fakes: ReembedFakes, size: int = 10) -> ReembedReport:
    async with running_workers(client, queues, fakes):  # type: ignore[arg-type]
        return await client.execute_workflow(
            REEMBED_WORKFLOW,
            ReembedInput(model_id=2, queues=queues, batch_size=size),
            id=f"reembed-{queues.cpu}",
            task_queue=queues.workflows,
            result_type=ReembedReport,
        )


async def test_batches_follow_the_cursor_then_the_switch(client: Client, queues: TaskQueues) -> None:
    fakes = ReembedFakes(total=25, failures=[transient("database restarting")])
    report = await _run(client, queues, fakes)
    # The failed first batch was retried with the same cursor; each later batch starts where the last ended.
    assert fakes.batches == [(None, 1), (None, 2), ("c010", 1), ("c020", 1)]
    assert fakes.finishes == 1
    assert report == ReembedReport(
        model_id=2, embedded=27, switched=True, active="new@2/64d", retired="old@1/384d", memories=5
    )


async def test_a_large_archive_continues_as_new_with_its_progress(
    client: Client, queues: TaskQueues, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reembed, "BATCHES_PER_RUN", 2)
    fakes = ReembedFakes(total=45)
    report = await _run(client, queues, fakes)
    assert [after for after, _ in fakes.batches] == [None, "c010", "c020", "c030", "c040"]
    assert report.embedded == 45 + 2 and report.switched
    handle = client.get_workflow_handle(f"reembed-{queues.cpu}")
    runs = [e async for e in handle.fetch_history_events() if e.HasField("workflow_execution_started_event_attributes")]
    assert len(runs) == 1  # this (last) run started from the carried cursor: earlier runs continued as new
    (started,) = runs
    assert started.workflow_execution_started_event_attributes.continued_execution_run_id


async def test_a_switch_that_found_a_gap_runs_again(client: Client, queues: TaskQueues) -> None:
    fakes = ReembedFakes(total=5, finish_missing=[3])
    report = await _run(client, queues, fakes)
    assert fakes.finishes == 2 and report.switched


async def test_the_sweep_reports_what_it_did(client: Client, queues: TaskQueues) -> None:
    fakes = ReembedFakes(total=0)
    async with running_workers(client, queues, fakes):  # type: ignore[arg-type]
        report = await client.execute_workflow(
            REEMBED_SWEEP_WORKFLOW,
            MaintenanceInput(queues=queues),
            id=f"reembed-sweep-{queues.cpu}",
            task_queue=queues.workflows,
            result_type=SweepReport,
        )
    assert report == SweepReport(started=[7], active_backfilled=3, memories_copied=1, dropped=[2])
