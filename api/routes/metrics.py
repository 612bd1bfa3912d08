"""`GET /metrics` for Prometheus. Scrapers send no cookies: the endpoint takes `NEXUS_METRICS_TOKEN` as a bearer
token when one is set (an empty value counts as unset), and otherwise answers only on loopback, to requests that
did not come through a proxy (a scraper on the same host or a sidecar)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import RuntimeDep
from nexus.ops.metrics import exposition

router = APIRouter(tags=["operations"])
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _forwarded(request: Request) -> bool:
    """A reverse proxy on this host makes every client look like loopback: a forwarded request is not local."""
    return any(h in request.headers for h in ("forwarded", "x-forwarded-for", "x-real-ip"))


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    token = runtime.settings.metrics_token
    if token is not None and token.get_secret_value():
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token.get_secret_value()}".encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "send NEXUS_METRICS_TOKEN as a bearer token")
    elif (request.client.host if request.client else "") not in LOOPBACK or _forwarded(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "metrics answer on loopback only: set NEXUS_METRICS_TOKEN to scrape remotely"
        )
    try:
        client = await asyncio.wait_for(runtime.temporal(), 2)
    except Exception:
        client = None  # the work metrics still answer; queue metrics are left out
    return Response(await exposition(runtime, client), media_type=CONTENT_TYPE_LATEST)
