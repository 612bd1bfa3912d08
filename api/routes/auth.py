"""Signing in and out: OpenID Connect (Google, or any provider), API key -> browser session, the session's
profile and CSRF token. Sessions live server-side; the browser holds an HttpOnly cookie with a random token."""

from __future__ import annotations

import contextlib
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    RuntimeDep,
    SessionDep,
    bearer_token,
    client_info,
    get_current_user,
    limit_attempts,
)
from api.routes.account import UserOut, WorkspaceOut, list_workspaces
from nexus.core.db import session_scope
from nexus.core.errors import Unavailable
from nexus.core.settings import Settings
from nexus.identity import audit, oauth, oidc
from nexus.identity.service import api_key_id
from nexus.identity.sessions import create_session, csrf_token_for, end_session

router = APIRouter(prefix="/auth", tags=["auth"])

SIGNIN_CALLBACK = "/auth/google/callback"


class Me(BaseModel):
    user: UserOut
    workspaces: list[WorkspaceOut]
    auth: str = Field(description="`session` (cookie) or `api_key`.")
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token on cookie-authenticated POST/PUT/PATCH/DELETE."
    )


def set_session_cookies(response: Response, token: str, settings: Settings) -> None:
    age = int(settings.session_absolute_hours * 3600)
    secure = settings.secure_cookies
    response.set_cookie(SESSION_COOKIE, token, max_age=age, httponly=True, samesite="lax", secure=secure, path="/")
    # Readable by our page's script (double submit); worthless without the HttpOnly session it is derived from.
    response.set_cookie(CSRF_COOKIE, csrf_token_for(token), max_age=age, samesite="lax", secure=secure, path="/")


def clear_session_cookies(response: Response, settings: Settings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=settings.secure_cookies, samesite="lax")


MAX_REDIRECT = 2000


def safe_redirect(target: str | None, settings: Settings) -> str:
    """Where to send the browser after sign-in: the frontend, a path on it, or a URL on a trusted origin.
    Anything else (another host, `//evil`, `/\\evil`, a scheme like javascript:) is refused, never followed."""
    base = (settings.frontend_url or settings.public_base_url).rstrip("/") + "/"
    if not target:
        return base
    if len(base) + len(target) > MAX_REDIRECT:  # stored with the sign-in's state, in a column of this size
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"`next` is too long (at most {MAX_REDIRECT} characters)")
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target or "\n" in target:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "`next` must be a path starting with a single /")
        return base + target[1:]  # a path on the frontend, wherever the frontend is mounted
    if f"{parts.scheme}://{parts.netloc}".lower() in settings.trusted_origins and parts.scheme in ("http", "https"):
        return target
    raise HTTPException(status.HTTP_400_BAD_REQUEST, "`next` must be a relative path or a URL on a configured origin")


class SignInOptions(BaseModel):
    google: bool = Field(description="Sign-in with Google (or the configured OpenID Connect provider) is on.")
    api_key: bool = True


@router.get("/options")
async def signin_options(runtime: RuntimeDep) -> SignInOptions:
    """How one may sign in here: public, for the sign-in page."""
    return SignInOptions(google=runtime.settings.signin_enabled)


@router.post("/session")
async def api_key_session(request: Request, runtime: RuntimeDep, session: SessionDep) -> JSONResponse:
    """Exchange the API key in the Authorization header for a browser session (the embedded default's sign-in,
    with no identity provider and no internet)."""
    token = bearer_token(request)
    # Per address: a count per key (its visible prefix) would let anyone who saw the prefix lock its holder out.
    await limit_attempts(request, runtime, "session")
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send your API key as `Authorization: Bearer <api key>` to open a session",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = await get_current_user(request, runtime)
    token = await create_session(
        session,
        user,
        client_info(request),
        replaces=request.cookies.get(SESSION_COOKIE),
        method="api_key",
        api_key_id=await api_key_id(session, token),
    )
    await session.commit()
    body = {"user": UserOut.model_validate(user, from_attributes=True).model_dump(mode="json")}
    response = JSONResponse({**body, "csrf_token": csrf_token_for(token)})
    set_session_cookies(response, token, runtime.settings)
    return response


@router.get("/me")
async def me(request: Request, user: CurrentUser, session: SessionDep) -> Me:
    """Who is signed in, their workspaces, and (for a cookie session) the CSRF token for state changes."""
    token: str | None = getattr(request.state, "session_token", None)
    return Me(
        user=UserOut.model_validate(user, from_attributes=True),
        workspaces=await list_workspaces(user, session),
        auth="session" if token else "api_key",
        csrf_token=csrf_token_for(token) if token else None,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, user: CurrentUser, runtime: RuntimeDep, session: SessionDep) -> Response:
    """End this browser session (with an API key there is no session; the key stays valid: revoke it instead)."""
    token: str | None = getattr(request.state, "session_token", None)
    if token:
        await end_session(session, token, client_info(request))
        await session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, runtime.settings)
    return response


def _signin_configured(settings: Settings) -> None:
    if not settings.signin_enabled:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "sign-in with Google is not configured (set NEXUS_GOOGLE_CLIENT_ID, NEXUS_GOOGLE_CLIENT_SECRET and "
            "NEXUS_PUBLIC_URL); meanwhile sign in with an API key: POST /auth/session",
        )


async def _metadata(settings: Settings) -> dict:
    try:
        return await oidc.discover(settings)
    except oidc.ProviderUnavailable as exc:
        raise Unavailable("the identity provider", str(exc)) from exc


@router.get("/google/start", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse)
async def google_start(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    next: Annotated[str | None, Query(description="Where to land afterwards: a path, or a trusted origin.")] = None,
) -> RedirectResponse:
    """Start the authorization-code flow (state, nonce, PKCE S256) and send the browser to the provider."""
    settings = runtime.settings
    _signin_configured(settings)
    await limit_attempts(request, runtime, "signin")
    target = safe_redirect(next, settings)
    meta = await _metadata(settings)
    config = oidc.client_config(settings, meta, redirect_path=SIGNIN_CALLBACK, scopes=oidc.SIGNIN_SCOPES)
    pending = await oauth.begin(session, config, purpose="signin", redirect_to=target, with_nonce=True)
    await session.commit()
    response = RedirectResponse(pending.url, status_code=status.HTTP_302_FOUND)
    set_flow_cookie(response, pending.browser_secret, settings)
    return response


def set_flow_cookie(response: Response, secret: str, settings: Settings) -> None:
    response.set_cookie(
        oauth.BROWSER_COOKIE,
        secret,
        max_age=int(oauth.STATE_TTL.total_seconds()),
        httponly=True,
        samesite="lax",  # the callback is a top-level navigation from the provider: Lax cookies ride along
        secure=settings.secure_cookies,
        path="/",
    )


@router.get("/google/callback", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse)
async def google_callback(
    request: Request,
    runtime: RuntimeDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """The provider sends the browser back here. Every check fails closed, with no session created."""
    settings = runtime.settings
    _signin_configured(settings)
    await limit_attempts(request, runtime, "signin")
    client = client_info(request)

    async def refuse(reason: str, code_: int = status.HTTP_400_BAD_REQUEST) -> JSONResponse:
        await audit.record_now(runtime.engine, "signin", outcome="failure", client=client, details={"reason": reason})
        # The flow cookie stays: a forged callback must not break the browser's own sign-in in flight.
        return JSONResponse({"detail": f"sign-in failed: {reason}"}, status_code=code_)

    if error:  # the user declined, or the provider refused the request (some providers omit the state here)
        with contextlib.suppress(oauth.OAuthFlowError):
            await oauth.complete(runtime.engine, state=state, browser_secret=None, purpose="", provider="")
        return await refuse(f"the provider answered {error[:64]}")
    try:
        row, verifier = await oauth.complete(
            runtime.engine,
            state=state,
            browser_secret=request.cookies.get(oauth.BROWSER_COOKIE),
            purpose="signin",
            provider=oidc.SIGNIN_PROVIDER,
        )
    except oauth.OAuthFlowError as exc:
        return await refuse(str(exc))
    if not code:
        return await refuse("the callback has no authorization code")
    meta = await _metadata(settings)
    config = oidc.client_config(settings, meta, redirect_path=SIGNIN_CALLBACK, scopes=oidc.SIGNIN_SCOPES)
    try:
        tokens = await oauth.exchange_code(config, code, verifier)
    except oauth.TokenEndpointError as exc:
        if exc.misconfigured:
            await audit.record_now(
                runtime.engine, "oauth.misconfigured", outcome="failure", details={"error": exc.error}
            )
        return await refuse(f"the provider refused the code ({exc.error or exc.status})", status.HTTP_502_BAD_GATEWAY)
    if not tokens.get("id_token"):
        return await refuse("the provider returned no ID token")
    try:
        claims = await oidc.verify_id_token(
            tokens["id_token"], meta=meta, client_id=config.client_id, nonce=row.nonce, timeout=settings.oauth_timeout_s
        )
        async with session_scope(runtime.engine) as session:
            signed_in = await oidc.link_identity(session, oidc.SIGNIN_PROVIDER, claims)
            token = await create_session(
                session,
                signed_in.user,
                client,
                replaces=request.cookies.get(SESSION_COOKIE),
                method="oidc",
            )
    except oauth.OAuthFlowError as exc:
        return await refuse(str(exc))
    response = RedirectResponse(row.redirect_to or safe_redirect(None, settings), status_code=status.HTTP_302_FOUND)
    set_session_cookies(response, token, settings)
    response.delete_cookie(oauth.BROWSER_COOKIE, path="/")
    return response
