"""Container health checks for docker-compose.yml: `healthcheck.py api` and `healthcheck.py worker QUEUE`.

The image has no curl, and a worker serves no HTTP, so both checks are Python run inside the container.

api: healthy when GET /health/ready answers 200, i.e. Temporal, Postgres, storage and a poller on every queue are
reachable from the API. The failing components are printed, so `docker inspect` shows why it is unhealthy.

worker: healthy when Temporal lists this container as a poller of its queue. The SDK names each worker
`<pid>@<hostname>` and a container's hostname is its own, so a poller from another container never counts. Temporal
forgets pollers about 5 minutes after their last poll, so a worker that has lost Temporal (alive, polling nothing)
turns unhealthy. So does one whose every activity slot has been busy for over 5 minutes, because a full worker stops
polling (e.g. worker-gpu at concurrency 1 on a very long file); it turns healthy again when a slot frees. This is the
same rule the API's readiness applies to every queue.

Exits 0 when healthy, 1 when not; os._exit skips interpreter teardown, where a short-lived Temporal client can
crash the process (temporalio/sdk-python#300) and turn a healthy answer into a failed check.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 8.0  # under the compose healthcheck timeout (10 s), so a hung dependency reads as unhealthy, not killed


def check_api() -> tuple[bool, str]:
    from nexus.core.settings import Settings

    settings = Settings()
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    url = f"http://{host}:{settings.api_port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return resp.status == 200, f"{url}: {resp.status}"
    except urllib.error.HTTPError as exc:  # 503 carries the failing components
        try:
            failing = json.loads(exc.read()).get("failing", [])
        except ValueError:
            failing = []
        return False, f"{url}: {exc.code}, not ok: {', '.join(failing) or 'unknown'}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def own_pollers(identities: list[str], hostname: str) -> list[str]:
    """The pollers that belong to this container (SDK identity `<pid>@<hostname>`)."""
    return [i for i in identities if "@" in i and i.rpartition("@")[2] == hostname]


async def _worker_pollers(queue: str) -> tuple[str, list[str]]:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from nexus.core.orchestration import Queue, TaskQueues
    from nexus.core.settings import Settings
    from nexus.core.temporal import connect

    settings = Settings()
    name = TaskQueues.from_prefix(settings.task_queue_prefix).name(Queue(queue))
    client = await connect(settings)
    identities: list[str] = []
    # The workflows queue polls both kinds; the others poll activity tasks only.
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind)
        )
        identities += [p.identity for p in resp.pollers]
    return name, identities


def check_worker(queue: str) -> tuple[bool, str]:
    hostname = socket.gethostname()
    try:
        name, identities = asyncio.run(asyncio.wait_for(_worker_pollers(queue), TIMEOUT_S))
    except Exception as exc:
        return False, f"cannot ask Temporal about queue {queue}: {type(exc).__name__}: {exc}"
    mine = own_pollers(identities, hostname)
    if mine:
        return True, f"{name}: polled by {', '.join(sorted(set(mine)))}"
    return False, f"{name}: no poller from this container ({hostname}); pollers seen: {identities or 'none'}"


def main(argv: list[str]) -> int:
    if argv == ["api"]:
        ok, detail = check_api()
    elif len(argv) == 2 and argv[0] == "worker":
        ok, detail = check_worker(argv[1])
    else:
        print("usage: healthcheck.py api | healthcheck.py worker QUEUE", file=sys.stderr)
        return 2
    print(("healthy: " if ok else "unhealthy: ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
