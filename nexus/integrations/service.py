"""Integrations: connecting an account, keeping its tokens fresh, using them, and letting go.

One writer per integration: its TokenRefresh workflow. Anything else that needs a fresh token (an API call that
got a 401, the refresh route) asks the workflow (`refresh_now`, an update) instead of refreshing on its own, so
two refreshes never race to rotate the same refresh token. Tokens are written with optimistic concurrency
(`version`), never holding a database lock across an HTTP call, and a returned refresh token is stored in the
same statement as its access token (the old one is kept when the answer has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from models import Integration, IntegrationStatus, User
from models.base import utcnow
from nexus.core.crypto import DecryptionError, Sealed
from nexus.core.db import session_scope
from nexus.core.errors import Unavailable
from nexus.core.orchestration import (
    SA_INTEGRATION,
    SA_USER_ID,
    TOKEN_REFRESH_WORKFLOW,
    integration_workflow_id,
)
from nexus.core.temporal import RPC_TIMEOUT, is_running
from nexus.identity import audit, oauth
from nexus.identity.access import Action, permitted
from nexus.identity.audit import NO_CLIENT, ClientInfo
from nexus.integrations.contracts import RefreshOutcome, TokenRefreshInput
from nexus.integrations.providers import Provider, ProviderNotConfigured, get_provider
from nexus.runtime import Runtime

log = logging.getLogger("nexus.integrations")

GIVE_UP_AFTER_DAYS = 4  # transient failures on this many separate days (as Nango does) before asking the user
MISCONFIGURED_RETRY_S = 3600.0
REAUTH_WARNING = timedelta(days=7)
FRESH_ENOUGH = timedelta(seconds=30)  # an access token closer than this to expiry is refreshed before use
REFRESH_LEASE = timedelta(seconds=90)  # longer than the refresh activity's start-to-close timeout
LIVE = (IntegrationStatus.active, IntegrationStatus.degraded)


class IntegrationError(Exception):
    """The integration cannot act for the user now (needs re-auth, disconnected): the message says what to do."""


class RefreshDeferred(Exception):
    """A passing failure at the provider (429, 5xx, timeout): try again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


def context(row_id: uuid.UUID, column: str) -> str:
    """Associated data of a sealed token: where it lives, so a copy in another row or column does not open."""
    return f"integrations.{column}:{row_id}"


def seal(row_id: uuid.UUID, column: str, value: str) -> Sealed:
    return Sealed.of(value, context(row_id, column))


def reauth_due(row: Integration, now: datetime | None = None) -> bool:
    """Whether the refresh token will die soon whatever we do (a provider's absolute lifetime)."""
    return row.reauth_due_at is not None and row.reauth_due_at <= (now or utcnow()) + REAUTH_WARNING


def expires_at(token: dict[str, Any], now: datetime) -> datetime | None:
    """Absolute expiry from `expires_in` (or `expires_at`); None when the provider does not say."""
    if token.get("expires_in") is not None:
        return now + timedelta(seconds=float(token["expires_in"]))
    if token.get("expires_at") is not None:
        return datetime.fromtimestamp(float(token["expires_at"]), tz=now.tzinfo)
    return None


# --- connecting -----------------------------------------------------------------------------------------------


async def begin_connect(
    session: AsyncSession, runtime: Runtime, user: User, provider_name: str, redirect_to: str
) -> oauth.PendingAuthorization:
    provider = await get_provider(runtime.settings, provider_name)
    return await oauth.begin(session, provider.config, purpose="connect", user_id=user.id, redirect_to=redirect_to)


@dataclass(frozen=True)
class Connected:
    integration: Integration
    redirect_to: str | None


async def fetch_profile(provider: Provider, access_token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=provider.config.timeout_s) as http:
        resp = await http.get(provider.profile_url, headers={"Authorization": f"Bearer {access_token}"})
    if resp.status_code >= 300:
        raise oauth.OAuthFlowError(f"the provider's profile answered HTTP {resp.status_code}")
    body = resp.json()
    if not isinstance(body, dict):
        raise oauth.OAuthFlowError("the provider's profile is not a JSON object")
    return body


async def complete_connect(
    runtime: Runtime,
    client: Client,
    user: User,
    provider_name: str,
    *,
    code: str | None,
    state: str | None,
    browser_secret: str | None,
    info: ClientInfo,
) -> Connected:
    """Finish a connection: exchange the code (with the PKCE verifier), learn the account, store the tokens
    sealed, and (re)start the integration's refresh workflow. Reconnecting the same account replaces its
    tokens, revokes the refresh token it replaces, and replaces its workflow."""
    provider = await get_provider(runtime.settings, provider_name)
    row, verifier = await oauth.complete(
        runtime.engine, state=state, browser_secret=browser_secret, purpose="connect", provider=provider_name
    )
    if row.user_id != user.id:
        raise oauth.OAuthFlowError("this connection was started by another user")
    if not code:
        raise oauth.OAuthFlowError("the callback has no authorization code")
    tokens = await oauth.exchange_code(provider.config, code, verifier)
    if not tokens.get("access_token"):
        raise oauth.OAuthFlowError("the provider returned no access token")
    account_id, email = provider.account(await fetch_profile(provider, tokens["access_token"]))
    now = utcnow()
    granted = str(tokens.get("scope") or " ".join(provider.config.scopes)).split()
    replaced: str | None = None
    async with session_scope(runtime.engine) as session:
        integration = (
            await session.execute(
                select(Integration)
                .where(col(Integration.owner_id) == user.id, col(Integration.provider) == provider_name)
                .where(col(Integration.account_id) == account_id)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if integration is None:
            integration = Integration(owner_id=user.id, provider=provider_name, account_id=account_id)
            session.add(integration)
        elif integration.refresh_token is not None and tokens.get("refresh_token"):
            # Google keeps 100 refresh tokens per account and client, then silently drops the oldest: revoke ours.
            with contextlib.suppress(DecryptionError):
                replaced = integration.refresh_token.open(context(integration.id, "refresh_token"))
        integration.account_email = email
        integration.scopes = granted
        integration.status = IntegrationStatus.active
        integration.access_token = seal(integration.id, "access_token", tokens["access_token"])
        if tokens.get("refresh_token"):
            integration.refresh_token = seal(integration.id, "refresh_token", tokens["refresh_token"])
            integration.refresh_token_issued_at = now
            lifetime = provider.refresh_token_lifetime
            integration.reauth_due_at = now + lifetime if lifetime else None
        integration.access_token_expires_at = expires_at(tokens, now)
        integration.last_refreshed_at = now
        integration.last_error = None
        integration.failure_days = []
        integration.version = (integration.version or 0) + 1
        await session.flush()
        audit.record(
            session,
            "integration.connect",
            user_id=user.id,
            target_type="integration",
            target_id=str(integration.id),
            client=info,
            details={"provider": provider_name, "reconnect": replaced is not None},
        )
    if replaced:
        await oauth.revoke(provider.config, replaced)
    await start_refresh_workflow(client, runtime, integration, replace=True)
    return Connected(integration, row.redirect_to)


async def start_refresh_workflow(client: Client, runtime: Runtime, integration: Integration, *, replace: bool) -> None:
    """Start the integration's refresh workflow. `replace` (a reconnect) terminates a running one; otherwise a
    running one is kept (the sweep)."""
    inp = TokenRefreshInput(
        integration_id=integration.id,
        queues=runtime.queues,
        expires_at=integration.access_token_expires_at,
        margin_s=runtime.settings.refresh_margin_s,
        jitter_s=runtime.settings.refresh_jitter_s,
    )
    await client.start_workflow(
        TOKEN_REFRESH_WORKFLOW,
        inp,
        id=integration_workflow_id(integration.id),
        task_queue=runtime.queues.workflows,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=(
            WorkflowIDConflictPolicy.TERMINATE_EXISTING if replace else WorkflowIDConflictPolicy.USE_EXISTING
        ),
        rpc_timeout=RPC_TIMEOUT,
        static_summary=f"Keeps the {integration.provider} integration {integration.id} signed in",
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_USER_ID, str(integration.owner_id)),
                SearchAttributePair(SA_INTEGRATION, integration.provider),
            ]
        ),
    )


# --- refreshing (the workflow's activity: the only writer of tokens after connect) ---------------------------


CHANGED_MEANWHILE = "the integration was reconnected, disconnected or refreshed meanwhile: that stands"


async def _mark(runtime: Runtime, integration_id: uuid.UUID, version: int, **values: Any) -> bool:
    """Write a refresh's outcome only if nobody wrote the row since the refresh read it (at `version`) and it is
    still live: a disconnect or reconnect meanwhile wins, and a stale attempt's `degraded` or `needs_reauth`
    never lands on a revoked integration or on fresh tokens. False when it did not apply."""
    async with session_scope(runtime.engine) as session:
        applied = await session.execute(
            update(Integration)
            .where(
                col(Integration.id) == integration_id,
                col(Integration.version) == version,
                col(Integration.status).in_(LIVE),
            )
            .values(**values)
            .returning(col(Integration.id))
        )
        return applied.scalar_one_or_none() is not None


async def refresh(runtime: Runtime, integration_id: uuid.UUID) -> RefreshOutcome:
    """Refresh the access token once. Terminal outcomes come back as a status; a passing failure raises
    RefreshDeferred (the activity retries it with backoff, honouring Retry-After). A refresh already in flight
    (its lease is held) is waited for and its outcome reported, never doubled."""
    lease = await _claim(runtime, integration_id)
    if lease is None:
        await _wait_for_lease(runtime, integration_id)
        return await _current(runtime, integration_id, detail="another refresh was in flight")
    try:
        return await _refresh_claimed(runtime, integration_id)
    finally:
        # Only this attempt's lease: one that outlived it (a slow provider) may belong to another attempt now.
        async with session_scope(runtime.engine) as session:
            await session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id, col(Integration.refreshing_until) == lease)
                .values(refreshing_until=None)
            )


async def _claim(runtime: Runtime, integration_id: uuid.UUID) -> datetime | None:
    """The lease this attempt now holds (its end), or None when another attempt holds one."""
    now = utcnow()
    lease = now + REFRESH_LEASE
    async with session_scope(runtime.engine) as session:
        claimed = (
            await session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .where(or_(col(Integration.refreshing_until).is_(None), col(Integration.refreshing_until) < now))
                .values(refreshing_until=lease)
                .returning(col(Integration.id))
            )
        ).scalar_one_or_none()
    return lease if claimed is not None else None


async def _wait_for_lease(runtime: Runtime, integration_id: uuid.UUID) -> None:
    deadline = utcnow() + REFRESH_LEASE
    while utcnow() < deadline:
        async with session_scope(runtime.engine) as session:
            until = (
                await session.execute(
                    select(col(Integration.refreshing_until)).where(col(Integration.id) == integration_id)
                )
            ).scalar_one_or_none()
        if until is None or until < utcnow():
            return
        await asyncio.sleep(0.2)


async def _refresh_claimed(runtime: Runtime, integration_id: uuid.UUID) -> RefreshOutcome:
    async with session_scope(runtime.engine) as session:
        row = await session.get(Integration, integration_id)
        if row is None:
            return RefreshOutcome(status=IntegrationStatus.revoked.value, detail="the integration no longer exists")
        if row.status not in LIVE:
            return RefreshOutcome(status=str(row.status), expires_at=row.access_token_expires_at)
        version = row.version
        try:
            refresh_token = row.refresh_token.open(context(row.id, "refresh_token")) if row.refresh_token else None
        except DecryptionError as exc:
            return await _decryption_failed(runtime, row, exc)
    if refresh_token is None:
        if not await _needs_reauth(runtime, row, version, "the provider gave no refresh token: reconnect"):
            return await _current(runtime, integration_id, detail=CHANGED_MEANWHILE)
        return RefreshOutcome(status=IntegrationStatus.needs_reauth.value)
    try:
        provider = await get_provider(runtime.settings, row.provider)
    except ProviderNotConfigured as exc:  # an operator removed the client registration: wait for them
        if not await _mark(
            runtime, integration_id, version, status=IntegrationStatus.degraded, last_error=str(exc)[:500]
        ):
            return await _current(runtime, integration_id, detail=CHANGED_MEANWHILE)
        return RefreshOutcome(
            status=IntegrationStatus.degraded.value, retry_in_s=MISCONFIGURED_RETRY_S, detail=str(exc)
        )
    now = utcnow()
    try:
        token = await oauth.refresh(provider.config, refresh_token)  # no database lock is held here
    except oauth.TokenEndpointError as exc:
        return await _refresh_failed(runtime, row, version, exc)
    values: dict[str, Any] = {
        "access_token": seal(integration_id, "access_token", str(token["access_token"])),
        "access_token_expires_at": expires_at(token, now),
        "last_refreshed_at": now,
        "status": IntegrationStatus.active,
        "last_error": None,
        "failure_days": [],
        "version": version + 1,
    }
    if token.get("refresh_token") and token["refresh_token"] != refresh_token:
        values["refresh_token"] = seal(integration_id, "refresh_token", str(token["refresh_token"]))
        values["refresh_token_issued_at"] = now
        # Spotify's 6-month lifetime does not move on refresh; a rotated token elsewhere starts a new one.
        if provider.refresh_token_lifetime is None:
            values["reauth_due_at"] = None
    async with session_scope(runtime.engine) as session:
        stored = (
            await session.execute(
                update(Integration)
                .where(col(Integration.id) == integration_id, col(Integration.version) == version)
                .values(**values)
                .returning(col(Integration.id))
            )
        ).scalar_one_or_none()
    if stored is None:
        # Someone wrote newer tokens meanwhile (a reconnect): theirs win; ours came from the grant they replaced.
        return await _current(runtime, integration_id, detail="newer tokens were stored meanwhile")
    return RefreshOutcome(
        status=IntegrationStatus.active.value, expires_at=values["access_token_expires_at"], refreshed=True
    )


async def _current(runtime: Runtime, integration_id: uuid.UUID, detail: str | None = None) -> RefreshOutcome:
    async with session_scope(runtime.engine) as session:
        row = await session.get(Integration, integration_id)
    if row is None:
        return RefreshOutcome(status=IntegrationStatus.revoked.value)
    return RefreshOutcome(status=str(row.status), expires_at=row.access_token_expires_at, detail=detail)


async def _refresh_failed(
    runtime: Runtime, row: Integration, version: int, exc: oauth.TokenEndpointError
) -> RefreshOutcome:
    if exc.terminal:
        # A race, not a revocation, if the row changed while we asked (another writer rotated the token, or the
        # user reconnected or disconnected): then theirs stands.
        if not await _needs_reauth(runtime, row, version, f"the provider refused the grant ({exc.error}): reconnect"):
            return await _current(runtime, row.id, detail=CHANGED_MEANWHILE)
        return RefreshOutcome(status=IntegrationStatus.needs_reauth.value, detail=exc.error)
    if exc.misconfigured:
        message = f"the provider rejected this server's client credentials ({exc.error}): an operator must fix them"
        if not await _mark(runtime, row.id, version, status=IntegrationStatus.degraded, last_error=message):
            return await _current(runtime, row.id, detail=CHANGED_MEANWHILE)
        await audit.record_now(
            runtime.engine,
            "oauth.misconfigured",
            user_id=row.owner_id,
            target_type="integration",
            target_id=str(row.id),
            outcome="failure",
            details={"provider": row.provider, "error": exc.error},
        )
        return RefreshOutcome(status=IntegrationStatus.degraded.value, retry_in_s=MISCONFIGURED_RETRY_S, detail=message)
    # Passing trouble: degraded, not needs_reauth, until it has lasted on several separate days.
    today = utcnow().date().isoformat()
    days = sorted(set(row.failure_days) | {today})
    message = f"refresh failed for now: {exc}"
    if len(days) >= GIVE_UP_AFTER_DAYS:
        reason = f"refreshes failed on {len(days)} separate days: reconnect"
        if not await _needs_reauth(runtime, row, version, reason):
            return await _current(runtime, row.id, detail=CHANGED_MEANWHILE)
        return RefreshOutcome(status=IntegrationStatus.needs_reauth.value, detail=message)
    if not await _mark(
        runtime, row.id, version, status=IntegrationStatus.degraded, last_error=message[:500], failure_days=days
    ):
        return await _current(runtime, row.id, detail=CHANGED_MEANWHILE)
    await audit.record_now(
        runtime.engine,
        "integration.refresh",
        user_id=row.owner_id,
        target_type="integration",
        target_id=str(row.id),
        outcome="failure",
        details={"provider": row.provider, "status": exc.status, "error": exc.error},
    )
    raise RefreshDeferred(message, exc.retry_after)


async def _needs_reauth(runtime: Runtime, row: Integration, version: int, reason: str) -> bool:
    """The user must reconnect; False when the row changed since `version` (nothing written, nothing audited)."""
    if not await _mark(runtime, row.id, version, status=IntegrationStatus.needs_reauth, last_error=reason[:500]):
        return False
    await audit.record_now(
        runtime.engine,
        "integration.needs_reauth",
        user_id=row.owner_id,
        target_type="integration",
        target_id=str(row.id),
        outcome="failure",
        details={"reason": reason[:200]},
    )
    return True


async def _decryption_failed(runtime: Runtime, row: Integration, exc: DecryptionError) -> RefreshOutcome:
    """A token that does not open (its key was dropped, the row was tampered with): a security event, and the
    user reconnects. Never a crash, never the ciphertext in a log."""
    log.error("security: integration %s: a stored token does not decrypt (%s)", row.id, exc)
    await audit.record_now(
        runtime.engine,
        "secret.decrypt",
        user_id=row.owner_id,
        target_type="integration",
        target_id=str(row.id),
        outcome="failure",
        details={"error": str(exc)[:200]},
    )
    await _mark(
        runtime,
        row.id,
        row.version,
        status=IntegrationStatus.needs_reauth,
        last_error="stored credentials are unreadable",
    )
    return RefreshOutcome(status=IntegrationStatus.needs_reauth.value)


# --- using the tokens ------------------------------------------------------------------------------------------


async def request_refresh(client: Client, integration_id: uuid.UUID) -> str:
    """Ask the integration's workflow to refresh now and wait for the outcome (its status)."""
    handle = client.get_workflow_handle(integration_workflow_id(integration_id))
    try:
        return str(await handle.execute_update("refresh_now", result_type=str, rpc_timeout=timedelta(seconds=60)))
    except WorkflowUpdateFailedError as exc:
        raise IntegrationError(f"the refresh failed: {exc.cause or exc}") from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise IntegrationError("this integration is not being kept fresh (needs re-auth?): reconnect it") from exc
        raise Unavailable("Temporal", exc.message) from exc


async def _usable(runtime: Runtime, integration_id: uuid.UUID) -> tuple[Integration, str]:
    async with session_scope(runtime.engine) as session:
        row = await session.get(Integration, integration_id)
    if row is None:
        raise IntegrationError("no such integration")
    if row.status not in LIVE or row.access_token is None:
        raise IntegrationError(f"the {row.provider} integration is {row.status}: reconnect it")
    try:
        return row, row.access_token.open(context(row.id, "access_token"))
    except DecryptionError as exc:
        await _decryption_failed(runtime, row, exc)
        raise IntegrationError(f"the {row.provider} integration's credentials are unreadable: reconnect it") from exc


async def access_token(runtime: Runtime, client: Client, integration_id: uuid.UUID) -> str:
    """A token good for at least a little while: one about to expire is refreshed first (by the workflow)."""
    row, token = await _usable(runtime, integration_id)
    expiry = row.access_token_expires_at
    if expiry is not None and expiry - utcnow() < FRESH_ENOUGH:
        await request_refresh(client, integration_id)
        row, token = await _usable(runtime, integration_id)
    return token


async def call_api(
    runtime: Runtime, client: Client, integration_id: uuid.UUID, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Call the provider's API as the user. A 401 gets exactly one refresh (through the workflow) and one retry."""
    token = await access_token(runtime, client, integration_id)
    timeout = runtime.settings.oauth_timeout_s
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        resp = await http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if resp.status_code != 401:
            return resp
        status = await request_refresh(client, integration_id)
        if status not in {s.value for s in LIVE}:
            raise IntegrationError(f"the provider no longer accepts this integration ({status}): reconnect it")
        _, token = await _usable(runtime, integration_id)
        return await http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)


async def profile(runtime: Runtime, client: Client, integration: Integration) -> dict[str, Any]:
    provider = await get_provider(runtime.settings, integration.provider)
    resp = await call_api(runtime, client, integration.id, "GET", provider.profile_url)
    if resp.status_code >= 300:
        raise IntegrationError(f"the provider's profile answered HTTP {resp.status_code}")
    body = resp.json()
    return body if isinstance(body, dict) else {}


async def live_integration(
    session: AsyncSession, user_id: uuid.UUID, provider: str, integration_id: uuid.UUID | None = None
) -> Integration | None:
    """The user's live integration with `provider` (that one, if given; else the most recently connected)."""
    query = permitted(Integration, user_id, Action.read).where(
        col(Integration.provider) == provider, col(Integration.status).in_(LIVE)
    )
    if integration_id:
        query = query.where(col(Integration.id) == integration_id)
    return (await session.execute(query.order_by(col(Integration.created_at).desc()).limit(1))).scalar_one_or_none()


# --- Google Drive -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveFile:
    id: str
    name: str
    mime_type: str
    size: int | None


def drive_file_url(runtime: Runtime, file_id: str) -> str:
    return f"{runtime.settings.google_api_url.rstrip('/')}/drive/v3/files/{file_id}"


async def drive_file(runtime: Runtime, client: Client, integration_id: uuid.UUID, file_id: str) -> DriveFile:
    """A Drive file's name, type and size, as the integration's account sees it."""
    resp = await call_api(
        runtime,
        client,
        integration_id,
        "GET",
        drive_file_url(runtime, file_id),
        params={"fields": "id,name,mimeType,size"},
    )
    if resp.status_code == 404:
        raise IntegrationError(f"no Drive file {file_id} that this Google account can see")
    if resp.status_code >= 300:
        raise IntegrationError(f"Google Drive answered HTTP {resp.status_code} for file {file_id}")
    meta = resp.json()
    size = meta.get("size")
    return DriveFile(
        id=file_id,
        name=str(meta.get("name") or file_id),
        mime_type=str(meta.get("mimeType") or ""),
        size=int(size) if size is not None else None,
    )


async def download(
    runtime: Runtime,
    client: Client,
    integration_id: uuid.UUID,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    on_progress: Callable[[int, int | None], None] = lambda _done, _total: None,
) -> None:
    """Stream a file from the provider's API to `dest` as the user, within `max_bytes`. A 401 gets one refresh
    (through the workflow) and one retry; other 4xx are the user's to fix (IntegrationError), 5xx pass
    (httpx.HTTPStatusError, retried by the activity's policy)."""
    for attempt in (1, 2):
        token = await access_token(runtime, client, integration_id)
        async with (
            httpx.AsyncClient(timeout=runtime.settings.oauth_timeout_s, follow_redirects=True) as http,
            http.stream("GET", url, params={"alt": "media"}, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status_code == 401 and attempt == 1:
                await request_refresh(client, integration_id)
                continue
            if 400 <= resp.status_code < 500:
                raise IntegrationError(f"the provider refused the download (HTTP {resp.status_code})")
            resp.raise_for_status()
            total = int(resp.headers["content-length"]) if resp.headers.get("content-length") else None
            if total is not None and total > max_bytes:
                raise IntegrationError(f"the file is {total / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit")
            done = 0
            with dest.open("wb") as out:
                async for chunk in resp.aiter_bytes(1 << 20):
                    done += len(chunk)
                    if done > max_bytes:
                        raise IntegrationError(f"the file is over the {max_bytes / 1e6:.0f} MB limit")
                    out.write(chunk)
                    on_progress(done, total)
            return
    raise IntegrationError("the provider kept refusing the credentials: reconnect the integration")


# --- letting go --------------------------------------------------------------------------------------------------


async def disconnect(runtime: Runtime, client: Client, integration: Integration, info: ClientInfo = NO_CLIENT) -> bool:
    """Revoke at the provider where it can be (Spotify cannot: the user removes the app there), delete the
    secrets, end the workflow. True when the provider confirmed the revocation."""
    revoked = False
    with contextlib.suppress(Exception):  # a provider that is down must not keep the secrets here
        provider = await get_provider(runtime.settings, integration.provider)
        if integration.refresh_token is not None or integration.access_token is not None:
            sealed, column = (
                (integration.refresh_token, "refresh_token")
                if integration.refresh_token
                else (integration.access_token, "access_token")
            )
            assert sealed is not None
            revoked = await oauth.revoke(provider.config, sealed.open(context(integration.id, column)), column)
    async with session_scope(runtime.engine) as session:
        await session.execute(
            update(Integration)
            .where(col(Integration.id) == integration.id)
            .values(
                status=IntegrationStatus.revoked,
                access_token=None,
                refresh_token=None,
                access_token_expires_at=None,
                version=Integration.version + 1,
            )
        )
        audit.record(
            session,
            "integration.disconnect",
            user_id=integration.owner_id,
            target_type="integration",
            target_id=str(integration.id),
            client=info,
            details={"provider": integration.provider, "revoked_at_provider": revoked},
        )
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(integration_workflow_id(integration.id)).signal(
            "disconnect", rpc_timeout=RPC_TIMEOUT
        )
    return revoked


# --- the sweep -------------------------------------------------------------------------------------------------


async def sweep(runtime: Runtime, client: Client) -> int:
    """(Re)start the workflow of every live integration that has none running, and nudge those whose token
    expired unrefreshed. Returns how many were started or nudged."""
    now = utcnow()
    async with session_scope(runtime.engine) as session:
        rows = (await session.execute(select(Integration).where(col(Integration.status).in_(LIVE)))).scalars().all()
    acted = 0
    for row in rows:
        if not await is_running(client, integration_workflow_id(row.id)):
            await start_refresh_workflow(client, runtime, row, replace=False)
            acted += 1
        elif row.access_token_expires_at is not None and row.access_token_expires_at < now:
            with contextlib.suppress(IntegrationError):
                await request_refresh(client, row.id)
            acted += 1
    return acted
