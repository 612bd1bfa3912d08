"""Operator-facing activities: `worker_info`, which every queue serves, and the daily cleanup (cpu queue)."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel
from temporalio import activity

from activities.support import heartbeating
from nexus.media.contracts import CleanupReport
from nexus.media.transcribe import detect_device
from nexus.ops.cleanup import run_cleanup
from nexus.runtime import Runtime


class WorkerInfo(BaseModel):
    host: str
    pid: int
    task_queue: str
    device: str


@activity.defn(name="worker_info")
async def worker_info() -> WorkerInfo:
    """Tells an operator which machine and device serve a queue (run it from the Temporal UI or CLI)."""
    return WorkerInfo(
        host=socket.gethostname(),
        pid=os.getpid(),
        task_queue=activity.info().task_queue,
        device=detect_device(),
    )


class SystemActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    @activity.defn(name="system.cleanup")
    async def cleanup(self, dry_run: bool) -> CleanupReport:
        """Expired sessions, OAuth states and tickets, closed rate-limit windows, old events of finished chat turns,
        stored objects with no row (`nexus.ops.cleanup`). A dry run is asked for by the workflow input or, for
        every run this worker serves, by `NEXUS_CLEANUP_DRY_RUN`."""
        async with heartbeating():
            return await run_cleanup(self.rt, dry_run=dry_run or self.rt.settings.cleanup_dry_run)
