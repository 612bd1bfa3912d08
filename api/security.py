"""Security headers on every answer: what a reviewer checks first."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.core.settings import Settings

# Granted only to an allowed origin: a browser must never be told another site may send its credentials here.
_GRANTS = ("access-control-allow-credentials", "access-control-allow-methods", "access-control-allow-headers")

# HTML pages: the web console (its own scripts only; media from here, a microphone recording's blob, or the object
# store's presigned URLs) and the API docs, which load Swagger UI / ReDoc from jsDelivr.
HTML_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "media-src 'self' blob:{media}; worker-src 'self' blob:; frame-ancestors 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, media_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.csp = HTML_CSP.format(media="".join(f" {o}" for o in media_origins)).encode()

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
                    add[b"content-security-policy"] = self.csp
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


def media_origins(settings: Settings) -> list[str]:
    """Where the player may load media from besides the API: the object store, which answers /audio and
    /original with presigned URLs when it is S3."""
    if not settings.objects_url.startswith("s3://"):
        return []
    if settings.s3_endpoint_url:
        parts = urlsplit(settings.s3_endpoint_url)
        return [f"{parts.scheme}://{parts.netloc}"]
    return ["https://*.amazonaws.com"]
