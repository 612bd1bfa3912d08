"""Liveness and readiness. No auth: load balancers and `make up` poll these."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import RuntimeDep
from nexus.ops.fleet import check_workers
from nexus.ops.service import check_database, check_pollers, check_storage, check_temporal

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


READY_TIMEOUT_S = 2.0


@router.get("/health/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Every dependency checked at once with a short timeout: a frozen Temporal or database makes this answer
    503 within seconds, naming what is down, instead of timing out one check after another."""
    try:
        client = await asyncio.wait_for(runtime.temporal(), READY_TIMEOUT_S)
    except Exception:
        client = None
    temporal, database, storage, pollers, workers = await asyncio.gather(
        check_temporal(client, runtime.settings.temporal_target),
        check_database(runtime.engine),
        check_storage(runtime.store, runtime.settings.objects_url),
        check_pollers(client, runtime.queues),
        check_workers(runtime, client),
    )
    checks = [temporal, database, storage, *pollers, workers]
    failing = [c.name for c in checks if not c.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "components": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JSONResponse(body, status_code=200 if not failing else 503)
