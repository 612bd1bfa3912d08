"""CleanupWorkflow against a mocked cleanup activity on the time-skipping server: the dry-run flag of its input
reaches the activity on the cpu queue, the report comes back as the workflow result, and a failed attempt (the
database restarting) is retried. ReconcileJobs the same way, with its two activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client

from nexus.core.orchestration import CLEANUP_WORKFLOW, RECONCILE_JOBS_WORKFLOW, Queue, TaskQueues
from nexus.media.contracts import CleanupReport, MaintenanceInput
from tests.workflows.mocks import running_workers, transient


@dataclass
class CleanupFakes:
    """The cleanup activity under its real name, recording the dry-run flag of every attempt."""

    failures: list[BaseException] = field(default_factory=list)
    calls: list[tuple[bool, int, str]] = field(default_factory=list)  # (dry_run, attempt, task queue)

    @activity.defn(name="system.cleanup")
    async def cleanup(self, dry_run: bool) -> CleanupReport:
        info = activity.info()
        self.calls.append((dry_run, info.attempt, info.task_queue))
        if self.failures:
            raise self.failures.pop(0)
        return CleanupReport(dry_run=dry_run, sessions=3, turn_events=120, orphaned_media=1)

    def by_queue(self) -> dict[Queue, list[Any]]:
        return {q: [] for q in Queue} | {Queue.cpu: [self.cleanup]}


@pytest.mark.parametrize("dry_run", [True, False])
async def test_the_dry_run_flag_reaches_the_activity_and_the_report_is_the_result(
    client: Client, queues: TaskQueues, dry_run: bool
) -> None:
    fakes = CleanupFakes()
    async with running_workers(client, queues, fakes):
        report = await client.execute_workflow(
            CLEANUP_WORKFLOW,
            MaintenanceInput(queues=queues, dry_run=dry_run),
            id=f"cleanup-{queues.cpu}",
            task_queue=queues.workflows,
            result_type=CleanupReport,
        )
    assert fakes.calls == [(dry_run, 1, queues.cpu)]
    assert report == CleanupReport(dry_run=dry_run, sessions=3, turn_events=120, orphaned_media=1)
    assert report.total == 124


async def test_an_input_without_dry_run_is_a_real_run_and_a_failed_attempt_is_retried(
    client: Client, queues: TaskQueues
) -> None:
    """A schedule created before `dry_run` existed starts the workflow with `{"queues": ...}` only."""
    fakes = CleanupFakes(failures=[transient("database restarting"), transient("database restarting")])
    async with running_workers(client, queues, fakes):
        report = await client.execute_workflow(
            CLEANUP_WORKFLOW,
            {"queues": queues.model_dump()},
            id=f"cleanup-{queues.cpu}",
            task_queue=queues.workflows,
            result_type=CleanupReport,
        )
    assert [(dry, attempt) for dry, attempt, _ in fakes.calls] == [(False, 1), (False, 2), (False, 3)]
    assert not report.dry_run and report.sessions == 3


@dataclass
class ReconcileFakes:
    """The two reconcile activities under their real names: (name, attempt, task queue) of every call."""

    calls: list[tuple[str, int, str]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def _called(self, name: str) -> None:
        info = activity.info()
        self.calls.append((name, info.attempt, info.task_queue))

    @activity.defn(name="media.reconcile")
    async def jobs(self) -> int:
        self._called("media.reconcile")
        return 2

    @activity.defn(name="chat.reconcile")
    async def turns(self) -> int:
        self._called("chat.reconcile")
        if self.failures:
            raise self.failures.pop(0)
        return 1

    def by_queue(self) -> dict[Queue, list[Any]]:
        return {q: [] for q in Queue} | {Queue.cpu: [self.jobs, self.turns]}


async def test_reconcile_brings_jobs_then_chat_turns_in_line(client: Client, queues: TaskQueues) -> None:
    """Chat turns whose run ended behind the API's back are reconciled with the jobs, on the cpu queue; a failed
    attempt (the database restarting) is retried, and the result counts both."""
    fakes = ReconcileFakes(failures=[transient("database restarting")])
    async with running_workers(client, queues, fakes):
        fixed = await client.execute_workflow(
            RECONCILE_JOBS_WORKFLOW,
            MaintenanceInput(queues=queues),
            id=f"reconcile-{queues.cpu}",
            task_queue=queues.workflows,
            result_type=int,
        )
    assert fakes.calls == [
        ("media.reconcile", 1, queues.cpu),
        ("chat.reconcile", 1, queues.cpu),
        ("chat.reconcile", 2, queues.cpu),
    ]
    assert fixed == 3
