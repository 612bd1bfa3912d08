"""Security headers on every answer: what a reviewer checks first."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Granted only to an allowed origin: a browser must never be told another site may send its credentials here.
_GRANTS = ("access-control-allow-credentials", "access-control-allow-methods", "access-control-allow-headers")

# The only HTML pages are the API docs, which load Swagger UI / ReDoc from jsDelivr.
HTML_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                add = {b"x-content-type-options": b"nosniff", b"referrer-policy": b"no-referrer"}
                if api:
                    add[b"cache-control"] = b"no-store"
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    add[b"content-security-policy"] = HTML_CSP.encode()
                    add[b"x-frame-options"] = b"DENY"
                headers += [(k, v) for k, v in add.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class StrictCORS(CORSMiddleware):
    """Starlette's CORS, except that a disallowed origin gets no grants at all: the stock middleware sends
    `Access-Control-Allow-Credentials: true` (and, on preflight, the allowed methods) to any origin."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if not self.is_allowed_origin(request_headers["origin"]):
            for name in _GRANTS:
                del response.headers[name]
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if message["type"] != "http.response.start" or origin is None or self.is_allowed_origin(origin):
            await super().send(message, send, request_headers)
            return

        async def strip(msg: Message) -> None:
            headers = MutableHeaders(scope=msg)
            for name in _GRANTS:
                del headers[name]
            await send(msg)

        await super().send(message, strip, request_headers)
