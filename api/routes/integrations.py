"""Connected accounts (Google, Spotify): connect through the provider's consent page, see their status, refresh,
use them (the provider's profile), disconnect. Secrets never appear in an answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.deps import (
    CurrentUser,
    ReadableIntegration,
    RuntimeDep,
    SessionDep,
    TemporalDep,
    WritableIntegration,
    client_info,
)
from api.routes.auth import safe_redirect, set_flow_cookie
from models import Integration, IntegrationStatus
from nexus.identity import audit, oauth
from nexus.integrations import service
from nexus.integrations.providers import PROVIDERS, ProviderNotConfigured

router = APIRouter(prefix="/api/integrations", tags=["integrations"])

SPOTIFY_APPS_PAGE = "https://www.spotify.com/account/apps/"


class IntegrationOut(BaseModel):
    id: uuid.UUID
    provider: str
    account_id: str
    account_email: str | None
    scopes: list[str]
    status: IntegrationStatus
    access_token_expires_at: datetime | None
    last_refreshed_at: datetime | None
    last_error: str | None
    reauth_due: bool = Field(description="The provider will end this grant soon whatever we do: reconnect.")
    reauth_due_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Integration) -> IntegrationOut:
        return cls(
            id=row.id,
            provider=row.provider,
            account_id=row.account_id,
            account_email=row.account_email,
            scopes=row.scopes,
            status=row.status,
            access_token_expires_at=row.access_token_expires_at,
            last_refreshed_at=row.last_refreshed_at,
            last_error=row.last_error,
            reauth_due=service.reauth_due(row),
            reauth_due_at=row.reauth_due_at,
            created_at=row.created_at,
        )


class Disconnected(BaseModel):
    revoked_at_provider: bool
    detail: str


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown provider {name!r}: one of {', '.join(PROVIDERS)}")
    return name


def _not_configured(exc: ProviderNotConfigured) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@router.get("")
async def list_integrations(user: CurrentUser, session: SessionDep) -> list[IntegrationOut]:
    rows = await session.execute(
        select(Integration).where(col(Integration.owner_id) == user.id).order_by(col(Integration.created_at))
    )
    return [IntegrationOut.of(r) for r in rows.scalars()]


@router.get("/{provider}/connect", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse)
async def connect(
    provider: str,
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
    next: Annotated[str | None, Query(description="Where to land afterwards: a path, or a trusted origin.")] = None,
) -> RedirectResponse:
    """Send the browser to the provider's consent page (state + PKCE; Google: offline access, incremental
    scopes). Open it in the browser that will come back to the callback."""
    target = safe_redirect(next or "/integrations", runtime.settings)
    try:
        pending = await service.begin_connect(session, runtime, user, _provider(provider), target)
    except ProviderNotConfigured as exc:
        raise _not_configured(exc) from exc
    await session.commit()
    response = RedirectResponse(pending.url, status_code=status.HTTP_302_FOUND)
    set_flow_cookie(response, pending.browser_secret, runtime.settings)
    return response


@router.get("/{provider}/callback", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse)
async def callback(
    provider: str,
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    temporal: TemporalDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """The provider sends the browser back here; the tokens are stored sealed and a refresh workflow starts."""
    info = client_info(request)

    async def refuse(reason: str, code_: int = status.HTTP_400_BAD_REQUEST) -> HTTPException:
        await audit.record_now(
            runtime.engine,
            "integration.connect",
            user_id=user.id,
            outcome="failure",
            client=info,
            details={"provider": provider[:32], "reason": reason[:200]},
        )
        return HTTPException(code_, f"connecting {provider} failed: {reason}")

    _provider(provider)
    if error:
        raise await refuse(f"the provider answered {error[:64]}")
    try:
        done = await service.complete_connect(
            runtime,
            temporal,
            user,
            provider,
            code=code,
            state=state,
            browser_secret=request.cookies.get(oauth.BROWSER_COOKIE),
            info=info,
        )
    except ProviderNotConfigured as exc:
        raise _not_configured(exc) from exc
    except oauth.OAuthFlowError as exc:
        raise await refuse(str(exc)) from exc
    except oauth.TokenEndpointError as exc:
        raise await refuse(f"the provider refused the code ({exc.error or exc.status})", 502) from exc
    response = RedirectResponse(
        done.redirect_to or safe_redirect("/integrations", runtime.settings), status_code=status.HTTP_302_FOUND
    )
    response.delete_cookie(oauth.BROWSER_COOKIE, path="/")
    return response


@router.post("/{integration_id}/refresh")
async def refresh_now(
    integration: WritableIntegration, runtime: RuntimeDep, temporal: TemporalDep, session: SessionDep
) -> IntegrationOut:
    """Refresh the access token now (through the integration's workflow, its only writer) and answer with the
    result; 409 when it needs the user to reconnect."""
    try:
        await service.request_refresh(temporal, integration.id)
    except service.IntegrationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await session.refresh(integration)
    return IntegrationOut.of(integration)


@router.get("/{integration_id}/profile")
async def provider_profile(
    integration: ReadableIntegration, runtime: RuntimeDep, temporal: TemporalDep
) -> dict[str, Any]:
    """The account's profile at the provider (Spotify /v1/me, Google userinfo), fetched with a fresh token."""
    try:
        return await service.profile(runtime, temporal, integration)
    except service.IntegrationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ProviderNotConfigured as exc:
        raise _not_configured(exc) from exc


@router.delete("/{integration_id}")
async def disconnect(
    integration: WritableIntegration, request: Request, runtime: RuntimeDep, temporal: TemporalDep
) -> Disconnected:
    """Revoke at the provider where it can (Google), delete the tokens here, stop the refresh workflow."""
    revoked = await service.disconnect(runtime, temporal, integration, client_info(request))
    if integration.provider == "spotify":
        detail = f"disconnected; Spotify cannot revoke access remotely: remove the app at {SPOTIFY_APPS_PAGE}"
    elif revoked:
        detail = "disconnected and revoked at the provider"
    else:
        detail = "disconnected; the provider could not confirm the revocation (it may already be gone)"
    return Disconnected(revoked_at_provider=revoked, detail=detail)
