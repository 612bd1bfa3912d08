"""Operator-facing activities that every queue serves."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel
from temporalio import activity

from nexus.media.transcribe import detect_device


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
