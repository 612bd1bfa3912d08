"""Request bodies are limited while they arrive, and uploads beyond capacity are turned away before they start.

FastAPI parses a multipart upload completely (spooling it to disk) before the route runs, so a limit checked in
the route comes after the whole body was received. Here the declared Content-Length is checked first, and the
bytes are counted as they stream in: a client is told 413 as soon as it crosses the limit. Uploads in flight are
counted too: past `NEXUS_MAX_CONCURRENT_UPLOADS` a new one gets 429 with Retry-After at once, instead of piling up
on disk, threads and database connections until everything times out."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.core.settings import Settings

UPLOAD_PATH = "/api/media/upload"
MULTIPART_OVERHEAD = 1024 * 1024  # form fields and part headers around the file
RETRY_AFTER_S = 5


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body. An HTTPException, so FastAPI's body parsing passes it on unchanged (any
    other error there becomes a vague 400) and the app's exception handling answers 413 with this message."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})


CODEC_LIMIT = 4 * 2**20  # a payload may be 2 MB in Temporal: base64 in JSON makes that ~2.7 MB


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.uploads_in_flight = 0

    def limit_for(self, path: str) -> tuple[int, str]:
        if path == UPLOAD_PATH:
            mb = self.settings.max_media_mb
            return int(mb * 1024 * 1024) + MULTIPART_OVERHEAD, f"the file is larger than {mb:g} MB (NEXUS_MAX_MEDIA_MB)"
        if path.startswith("/codec/"):  # the Temporal UI sends a history's payloads (Temporal allows 2 MB each)
            return CODEC_LIMIT, f"the request body is larger than {CODEC_LIMIT // 2**20} MB"
        kb = self.settings.max_request_kb
        return kb * 1024, f"the request body is larger than {kb} KB (NEXUS_MAX_REQUEST_KB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit, message = self.limit_for(path)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, message)
            return
        is_upload = path == UPLOAD_PATH and scope["method"] == "POST"
        if is_upload and self.uploads_in_flight >= self.settings.max_concurrent_uploads:
            retry = {"Retry-After": str(RETRY_AFTER_S)}
            await _answer(send, 429, "too many uploads in progress; try again in a few seconds", retry)
            return

        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return message_in

        async def tracked(message_out: Message) -> None:
            nonlocal started
            started = started or message_out["type"] == "http.response.start"
            await send(message_out)

        if is_upload:
            self.uploads_in_flight += 1
        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, message)
        finally:
            if is_upload:
                self.uploads_in_flight -= 1


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    # The client may still be sending: close the connection rather than read the rest of an oversized body.
    raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
