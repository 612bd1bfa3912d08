"""Request logging (and request metrics) without query strings: browsers pass the API key as `?token=` on
WebSockets, and keys must never reach a log. (uvicorn's own access log prints full URLs, so `nexus api` turns it
off.)"""

from __future__ import annotations

import logging
import time
from typing import Any

from nexus.ops.metrics import observe_request

log = logging.getLogger("nexus.access")


class AccessLog:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "websocket.accept":
                status[0] = 101
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            method = scope.get("method", "WS")
            seconds = time.perf_counter() - started
            log.info("%s %s %s %.0f ms", method, scope["path"], status[0], seconds * 1000)
            # By route template (`/api/media/{media_id}`): raw paths would make a label per id.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observe_request(route, method, status[0], seconds)
