"""The codec server: `POST /codec/encode` and `POST /codec/decode`, so the Temporal Web UI (and `temporal ...
--codec-endpoint`) shows payloads that are encrypted in Temporal's store (nexus/core/codec.py) as plaintext.

The protocol is Temporal's remote codec protocol: a JSON body ``{"payloads": [...]}`` with payloads in protobuf's
JSON form (base64 `metadata` values and `data`), answered in the same shape. Payloads that are not encrypted come
back unchanged; one that does not open is a 400 (its key is gone, or it was altered).

Who may call it: an admin only (the payloads are every user's questions, transcripts and titles), with an API key
(`Authorization: Bearer`, as the CLI sends it) or with the browser's session cookie, as the Web UI sends it when
"include cross-origin credentials" is on.

The cookie path is the one exception to the API's CSRF rule (api/deps.py `_check_csrf`: a cookie-authenticated
POST needs an allowed Origin *and* the `X-CSRF-Token` header). The UI cannot send our CSRF token, so on these two
routes a cookie request instead needs:

- an Origin (or Referer) that is the Temporal UI's (`NEXUS_TEMPORAL_UI_URL`, default the embedded dev server's
  `http://<temporal_host>:<temporal_ui_port>`) or one the API trusts anyway (`trusted_origins`), else 403;
- `Content-Type: application/json`, else 415. A cross-site page cannot send that without a CORS preflight, and only
  the UI's origin (here) and `NEXUS_CORS_ORIGINS` (the app's CORS) pass a preflight, so no other page can even
  make the browser send the request;
- an admin's live session, like every other route.

That is safe because these routes change nothing: they are pure transforms of the request body, and their answer
reaches only origins the CORS rules grant. The UI's origin is trusted for exactly these paths: `CodecCORS` grants
it CORS with credentials on `/codec/*` only, and every other route still refuses it (no CORS grant, and the
full CSRF rule).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from google.protobuf import json_format
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.deps import SESSION_COOKIE, RuntimeDep, bearer_token, client_info, deny, get_admin_user, get_current_user
from models import User
from nexus.core.codec import EncryptionCodec, PayloadDecryptionError
from nexus.core.db import session_scope
from nexus.core.settings import Settings
from nexus.identity import audit
from nexus.identity.sessions import authenticate_session

PREFIX = "/codec"
ALLOWED_HEADERS = "content-type, x-namespace, authorization, authorization-extras"

router = APIRouter(prefix=PREFIX, tags=["admin"])

_ENCRYPTING = EncryptionCodec()
_NOT_ENCRYPTING = EncryptionCodec(encrypt=False)  # NEXUS_TEMPORAL_ENCRYPTION=false: decodes, never encrypts


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def ui_origin(settings: Settings) -> str:
    """The Temporal Web UI's origin: the only origin, besides the API's own, that may call /codec/* by cookie."""
    return _origin(settings.temporal_ui)


class CodecCORS:
    """CORS with credentials for the Temporal UI's origin, on /codec/* only. It sits outside the app's CORS
    middleware, which would refuse the UI's preflight (the UI is not in `NEXUS_CORS_ORIGINS`, and must not be for
    any other route). Other origins and paths pass through untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin.lower() != ui_origin(self.settings):
            await self.app(scope, receive, send)
            return
        grants = {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        }
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = {
                **grants,
                "access-control-allow-methods": "POST",
                "access-control-allow-headers": ALLOWED_HEADERS,
                "access-control-max-age": "600",
            }
            await Response(status_code=status.HTTP_204_NO_CONTENT, headers=preflight)(scope, receive, send)
            return

        async def granted(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in grants.items():
                    if name == "vary":
                        out.add_vary_header(value)
                    else:
                        out[name] = value
            await send(message)

        await self.app(scope, receive, granted)


async def codec_admin(request: Request, runtime: RuntimeDep) -> User:
    """An admin, by API key (the usual way) or by session cookie under the rule in the module docstring."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if bearer_token(request) is not None or not cookie:
        return await get_admin_user(await get_current_user(request, runtime))
    async with session_scope(runtime.engine) as session:
        found = await authenticate_session(session, cookie)
    if found is None:
        await deny(request, status.HTTP_401_UNAUTHORIZED, "session expired or signed out: sign in again")
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        referer = request.headers.get("referer")
        origin = _origin(referer) if referer else None
    allowed = runtime.settings.trusted_origins | {ui_origin(runtime.settings)}
    problem = None
    if origin is None:
        problem = "a cookie-authenticated request must send an Origin or Referer header"
    elif origin.lower() not in allowed:
        problem = f"origin {origin} may not use the codec server with this session"
    if problem:
        await audit.record_now(
            runtime.engine, "csrf", outcome="denied", client=client_info(request), details={"reason": problem[:120]}
        )
        await deny(request, status.HTTP_403_FORBIDDEN, problem)
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the payloads as application/json")
    request.state.session_token = cookie
    request.state.session_id = found[1].id
    return await get_admin_user(found[0])


CodecAdmin = Annotated[User, Depends(codec_admin)]


class PayloadsJSON(BaseModel):
    """Temporal's `Payloads` in protobuf JSON form."""

    payloads: list[dict[str, Any]] = Field(
        description='Each `{"metadata": {"encoding": "<base64>", ...}, "data": "<base64>"}`.', max_length=10_000
    )


async def _transform(body: PayloadsJSON, decode: bool, settings: Settings) -> Response:
    try:
        message = json_format.ParseDict(body.model_dump(), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not Temporal payloads in JSON form: {exc}") from None
    codec = _ENCRYPTING if settings.temporal_encryption else _NOT_ENCRYPTING
    try:
        done = await (codec.decode if decode else codec.encode)(message.payloads)
    except PayloadDecryptionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return Response(
        json_format.MessageToJson(Payloads(payloads=done)),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},  # every user's plaintext: never kept by a browser or proxy
    )


_DOC: dict[int | str, dict[str, Any]] = {200: {"model": PayloadsJSON}}


@router.post("/decode", response_class=Response, responses=_DOC)
async def decode(body: PayloadsJSON, runtime: RuntimeDep, _admin: CodecAdmin) -> Response:
    """Payloads as Temporal stores them -> the originals (admin only). For the Temporal Web UI and the CLI."""
    return await _transform(body, True, runtime.settings)


@router.post("/encode", response_class=Response, responses=_DOC)
async def encode(body: PayloadsJSON, runtime: RuntimeDep, _admin: CodecAdmin) -> Response:
    """Payloads -> as Temporal should store them (admin only): what the UI sends when it starts or signals a run."""
    return await _transform(body, False, runtime.settings)
