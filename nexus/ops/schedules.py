"""Every Temporal Schedule of a deployment, in one place: created (or brought up to date) when the workflows
worker starts, visible (and pausable, triggerable) on the Temporal UI's Schedules page and in `nexus schedules list`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from nexus.core.errors import Unavailable
from nexus.core.orchestration import (
    CLEANUP_WORKFLOW,
    RECONCILE_JOBS_WORKFLOW,
    REEMBED_SWEEP_WORKFLOW,
    SWEEP_ORPHANS_WORKFLOW,
    TOKEN_REFRESH_SWEEP_WORKFLOW,
    schedule_id,
)
from nexus.core.temporal import RPC_TIMEOUT
from nexus.media.contracts import MaintenanceInput
from nexus.runtime import Runtime

# (schedule name, workflow name, interval). Overlap policy: skip (a slow sweep is never run twice at once).
SCHEDULES = [
    ("reconcile-jobs", RECONCILE_JOBS_WORKFLOW, timedelta(minutes=1)),
    ("sweep-orphans", SWEEP_ORPHANS_WORKFLOW, timedelta(hours=1)),
    ("token-refresh-sweep", TOKEN_REFRESH_SWEEP_WORKFLOW, timedelta(minutes=15)),
    # Daily (at 00:00 UTC: intervals count from the epoch); `NEXUS_CLEANUP_DRY_RUN` makes its runs only report.
    ("cleanup", CLEANUP_WORKFLOW, timedelta(days=1)),
    # Daily: unfinished re-embeddings restarted, gaps in the active model's vectors filled, old models dropped.
    ("reembed-sweep", REEMBED_SWEEP_WORKFLOW, timedelta(days=1)),
]


async def ensure_schedules(client: Client, runtime: Runtime) -> None:
    """Create the schedules once per deployment (idempotent; the workflows worker calls it at every start)."""
    for name, workflow_name, every in SCHEDULES:
        sid = schedule_id(runtime.settings.task_queue_prefix, name)
        action = ScheduleActionStartWorkflow(
            workflow_name,
            MaintenanceInput(queues=runtime.queues),
            id=f"{sid}-run",
            task_queue=runtime.queues.workflows,
            execution_timeout=min(every * 10, timedelta(minutes=30)),
        )
        schedule = Schedule(
            action=action,
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await client.create_schedule(sid, schedule, rpc_timeout=RPC_TIMEOUT)
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(sid).update(_keeping_state(schedule), rpc_timeout=RPC_TIMEOUT)


def _keeping_state(schedule: Schedule) -> Callable[[ScheduleUpdateInput], ScheduleUpdate]:
    """An existing schedule takes this deployment's definition (interval, timeouts) and arguments, sealed again
    with the current primary key (so a retired key can go), keeping its state: paused by an operator stays so."""

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule.state = current.description.schedule.state
        return ScheduleUpdate(schedule=schedule)

    return update


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    workflow: str
    every: timedelta
    paused: bool
    next_runs: list[datetime]
    recent_runs: int


async def list_schedules(client: Client, runtime: Runtime) -> list[ScheduleInfo]:
    """Each schedule Nexus runs; one not created yet (no workflows worker has started) is left out. An
    unreachable Temporal is `Unavailable`."""
    found = []
    for name, workflow_name, every in SCHEDULES:
        sid = schedule_id(runtime.settings.task_queue_prefix, name)
        try:
            desc = await client.get_schedule_handle(sid).describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise Unavailable("Temporal", exc.message) from exc
        found.append(
            ScheduleInfo(
                id=sid,
                workflow=workflow_name,
                every=every,
                paused=desc.schedule.state.paused,
                next_runs=list(desc.info.next_action_times[:3]),
                recent_runs=desc.info.num_actions,
            )
        )
    return found
