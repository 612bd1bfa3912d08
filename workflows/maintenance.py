"""Maintenance workflows that Temporal Schedules start: orchestration only, one activity each."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.chat import ChatActivities
    from activities.media import MediaActivities
    from activities.system import SystemActivities
    from nexus.core.orchestration import CLEANUP_WORKFLOW, RECONCILE_JOBS_WORKFLOW, SWEEP_ORPHANS_WORKFLOW
    from nexus.media.contracts import CleanupReport, MaintenanceInput
    from workflows.shared import DB_RETRY


@workflow.defn(name=RECONCILE_JOBS_WORKFLOW)
class ReconcileJobsWorkflow:
    """Makes jobs and chat turns agree with their runs: a run terminated or failed where the API could not see it
    (the Temporal UI, a database outage at the end) is reflected in `media_jobs` and `chat_turns`, so no stream,
    retry or stop button waits forever. Returns how many were brought in line."""

    @workflow.run
    async def run(self, inp: MaintenanceInput) -> int:
        jobs = await workflow.execute_activity_method(
            MediaActivities.reconcile_jobs,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=2),
            schedule_to_close_timeout=timedelta(minutes=4),  # both within the schedule's 10-minute run limit
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )
        turns = await workflow.execute_activity_method(
            ChatActivities.reconcile_turns,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=2),
            schedule_to_close_timeout=timedelta(minutes=4),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )
        return jobs + turns


@workflow.defn(name=SWEEP_ORPHANS_WORKFLOW)
class SweepOrphansWorkflow:
    """Removes stored objects of media items that no longer exist, so a delete leaves nothing behind even when a
    step was still writing."""

    @workflow.run
    async def run(self, inp: MaintenanceInput) -> int:
        return await workflow.execute_activity_method(
            MediaActivities.sweep_orphans,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            schedule_to_close_timeout=timedelta(minutes=28),  # within the schedule's 30-minute run limit
        )


@workflow.defn(name=CLEANUP_WORKFLOW)
class CleanupWorkflow:
    """The daily cleanup (`nexus.ops.cleanup`): expired sessions, OAuth states and WebSocket tickets, closed
    rate-limit windows, old token events of finished chat turns, stored objects with no row. Its result is the
    report of what was deleted (or, in a dry run, would be), visible in the Temporal UI."""

    @workflow.run
    async def run(self, inp: MaintenanceInput) -> CleanupReport:
        return await workflow.execute_activity_method(
            SystemActivities.cleanup,
            inp.dry_run,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,  # each batch commits: a retried attempt goes on where the last one stopped
            schedule_to_close_timeout=timedelta(minutes=28),  # within the schedule's 30-minute run limit
        )
