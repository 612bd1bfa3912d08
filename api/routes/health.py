"""Liveness and readiness. No auth: load balancers and `make up` poll these."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import RuntimeDep
from nexus.ops.service import check_database, check_pollers, check_storage, check_temporal

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    try:
        client = await asyncio.wait_for(runtime.temporal(), 5)
    except Exception:
        client = None
    checks = [
        await check_temporal(client, runtime.settings.temporal_target),
        await check_database(runtime.engine),
        await check_storage(runtime.store, runtime.settings.objects_url),
        *await check_pollers(client, runtime.queues),
    ]
    failing = [c.name for c in checks if not c.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "components": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JSONResponse(body, status_code=200 if not failing else 503)
