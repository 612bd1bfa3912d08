"""The OAuth 2.0 client side, shared by sign-in and integrations: authorization requests kept server-side
(state, PKCE verifier, nonce), the code exchange, refresh and revocation, with provider errors classified.

State lives in `oauth_states`, hashed, single use (deleted as it is read), 10 minutes, and bound to the browser
by a short-lived cookie of its own: a callback replayed, forged, or opened in another browser finds nothing.
Authlib builds the requests (PKCE S256, client authentication); nothing here logs or raises a token.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from models import OAuthState
from models.base import new_id, utcnow
from nexus.core.crypto import DecryptionError, Sealed
from nexus.core.db import session_scope
from nexus.identity.service import digest

STATE_TTL = timedelta(minutes=10)
BROWSER_COOKIE = "nexus_oauth"
TERMINAL_ERRORS = frozenset({"invalid_grant", "admin_policy_enforced"})
CONFIG_ERRORS = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})


class OAuthFlowError(Exception):
    """A callback that cannot be honoured (bad or used state, another browser, the provider said no). The
    message is safe to show: it never holds a code or token."""


class TokenEndpointError(Exception):
    """The provider's token endpoint refused or failed. Classified, because only some of these mean the user
    must reconnect: `invalid_grant` does; `invalid_client` is an operator's misconfiguration; 429, 5xx and
    timeouts pass."""

    def __init__(self, status: int, error: str | None = None, retry_after: float | None = None) -> None:
        self.status, self.error, self.retry_after = status, error, retry_after
        what = error or (f"HTTP {status}" if status else "no answer (timeout or network)")
        super().__init__(f"token endpoint: {what}")

    @property
    def terminal(self) -> bool:
        return self.error in TERMINAL_ERRORS

    @property
    def misconfigured(self) -> bool:
        return self.error in CONFIG_ERRORS


@dataclass(frozen=True)
class ClientConfig:
    """One OAuth client registration at one provider."""

    provider: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    revocation_url: str | None = None
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 15.0


@dataclass(frozen=True)
class PendingAuthorization:
    url: str  # where to send the browser
    browser_secret: str  # the value of the short-lived cookie that binds the callback to this browser


def verifier_context(row_id: uuid.UUID) -> str:
    return f"oauth_states.code_verifier:{row_id}"


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _classify(resp: httpx.Response) -> httpx.Response:
    """Authlib hook: any non-2xx token answer becomes a TokenEndpointError (with the provider's error code)."""
    if resp.status_code < 300:
        return resp
    error = None
    try:
        body = resp.json()
        error = str(body.get("error"))[:64] if isinstance(body, dict) and body.get("error") else None
    except ValueError:
        pass
    raise TokenEndpointError(resp.status_code, error, _retry_after(resp))


def _client(config: ClientConfig, **kwargs: Any) -> AsyncOAuth2Client:
    client = AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        redirect_uri=config.redirect_uri,
        scope=" ".join(config.scopes),
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        timeout=config.timeout_s,
        follow_redirects=False,
        **kwargs,
    )
    client.register_compliance_hook("access_token_response", _classify)
    client.register_compliance_hook("refresh_token_response", _classify)
    return client


async def begin(
    session: AsyncSession,
    config: ClientConfig,
    *,
    purpose: str,
    user_id: uuid.UUID | None = None,
    redirect_to: str | None = None,
    with_nonce: bool = False,
) -> PendingAuthorization:
    """Record a new authorization request and return the provider URL to send the browser to."""
    await session.execute(delete(OAuthState).where(col(OAuthState.expires_at) < utcnow()))
    state, verifier, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(48), secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(24) if with_nonce else None
    row_id = new_id()
    row = OAuthState(
        id=row_id,
        code_verifier=Sealed.of(verifier, verifier_context(row_id)),
        state_hash=digest(state),
        browser_hash=digest(browser),
        purpose=purpose,
        provider=config.provider,
        user_id=user_id,
        nonce=nonce,
        redirect_to=redirect_to,
        expires_at=utcnow() + STATE_TTL,
    )
    session.add(row)
    await session.flush()
    params: dict[str, Any] = dict(config.extra_authorize_params)
    if nonce:
        params["nonce"] = nonce
    async with _client(config) as client:
        url, _ = client.create_authorization_url(config.authorize_url, state=state, code_verifier=verifier, **params)
    return PendingAuthorization(url=url, browser_secret=browser)


async def complete(
    engine: AsyncEngine, *, state: str | None, browser_secret: str | None, purpose: str, provider: str
) -> tuple[OAuthState, str]:
    """Consume the authorization request a callback answers; its row and the PKCE verifier. Single use: the row
    is deleted (and committed) before any check, so whatever the outcome, the state cannot be used again."""
    if not state:
        raise OAuthFlowError("the callback has no state parameter")
    async with session_scope(engine) as session:
        row = (
            await session.execute(
                delete(OAuthState).where(col(OAuthState.state_hash) == digest(state)).returning(OAuthState)
            )
        ).scalar_one_or_none()
    if row is None:
        raise OAuthFlowError("unknown or already used sign-in state: start again")
    if row.expires_at <= utcnow():
        raise OAuthFlowError("the sign-in took longer than 10 minutes: start again")
    if row.purpose != purpose or row.provider != provider:
        raise OAuthFlowError("this state belongs to another flow: start again")
    if not browser_secret or not hmac.compare_digest(digest(browser_secret), row.browser_hash):
        raise OAuthFlowError("this sign-in was started in another browser (or its cookie expired): start again")
    try:
        return row, row.code_verifier.open(verifier_context(row.id))
    except DecryptionError as exc:  # its key was dropped mid-flow: the user starts again, never a 500
        raise OAuthFlowError("this sign-in can no longer be completed: start again") from exc


async def exchange_code(config: ClientConfig, code: str, verifier: str) -> dict[str, Any]:
    """Trade an authorization code for tokens (the PKCE verifier proves we started the flow)."""
    async with _client(config) as client:
        try:
            return dict(
                await client.fetch_token(
                    config.token_url, grant_type="authorization_code", code=code, code_verifier=verifier
                )
            )
        except httpx.HTTPError as exc:
            raise TokenEndpointError(0) from exc


async def refresh(config: ClientConfig, refresh_token: str) -> dict[str, Any]:
    """Use a refresh token. The answer's `refresh_token` is present only when the provider rotated it."""
    async with _client(config) as client:
        try:
            resp = await client.post(
                config.token_url,
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                auth=client.client_auth(client.token_endpoint_auth_method),
            )
        except httpx.HTTPError as exc:
            raise TokenEndpointError(0) from exc
        _classify(resp)
        try:
            token = resp.json()
        except ValueError as exc:
            raise TokenEndpointError(resp.status_code, "unreadable token response") from exc
        if not isinstance(token, dict) or "access_token" not in token:
            raise TokenEndpointError(resp.status_code, str(token.get("error", "no access token"))[:64])
        return token


async def revoke(config: ClientConfig, token: str, hint: str = "refresh_token") -> bool:
    """Revoke at the provider (RFC 7009) where it has an endpoint; False where it has none or it failed."""
    if not config.revocation_url:
        return False
    async with _client(config) as client:
        try:
            resp = await client.revoke_token(config.revocation_url, token=token, token_type_hint=hint)
        except httpx.HTTPError:
            return False
    return resp.status_code < 300
