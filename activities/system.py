"""Operator-facing activities that every queue serves."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel
from temporalio import activity


class WorkerInfo(BaseModel):
    host: str
    pid: int
    task_queue: str
    device: str


def detect_device() -> str:
    """`cuda` when a CUDA device is usable by CTranslate2, else `cpu`."""
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


@activity.defn(name="worker_info")
async def worker_info() -> WorkerInfo:
    """Tells an operator which machine and device serve a queue (run it from the Temporal UI or CLI)."""
    return WorkerInfo(
        host=socket.gethostname(),
        pid=os.getpid(),
        task_queue=activity.info().task_queue,
        device=detect_device(),
    )
