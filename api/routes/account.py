"""The caller's own identity: profile, API keys, workspaces."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.deps import CurrentUser, RuntimeDep, SessionDep, client_info
from models import ApiKey, AuditLog, Role, Workspace, WorkspaceMember
from nexus.core.errors import BadInput
from nexus.identity.service import issue_api_key, issue_ws_ticket, revoke_api_key
from nexus.identity.sessions import list_sessions, revoke_session
from nexus.integrations import providers
from nexus.llm.service import configured_providers
from nexus.media import vocabulary

router = APIRouter(prefix="/api", tags=["account"])


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None
    is_admin: bool


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreate(BaseModel):
    name: str = Field(default="default", min_length=1, max_length=100)


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="Shown once; store it now.")


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    role: Role


class ConsoleConfig(BaseModel):
    """What the web console offers this user, so it shows no button that can only fail."""

    chat_providers: list[str] = Field(description="Usable in a chat turn, preferred first.")
    integrations: list[str] = Field(description="Providers that can be connected here.")
    temporal_ui_url: str | None = Field(description="Where operators inspect runs (admins only).")
    temporal_namespace: str | None


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, is_admin=user.is_admin)


@router.get("/config")
async def console_config(user: CurrentUser, runtime: RuntimeDep) -> ConsoleConfig:
    settings = runtime.settings
    return ConsoleConfig(
        chat_providers=configured_providers(settings),
        integrations=providers.available(settings),
        temporal_ui_url=settings.temporal_ui if user.is_admin else None,
        temporal_namespace=settings.temporal_namespace if user.is_admin else None,
    )


@router.get("/apikeys")
async def list_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyOut]:
    rows = (
        await session.execute(select(ApiKey).where(col(ApiKey.user_id) == user.id).order_by(col(ApiKey.created_at)))
    ).scalars()
    return [ApiKeyOut.model_validate(k, from_attributes=True) for k in rows]


@router.post("/apikeys", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, request: Request, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    issued = await issue_api_key(session, user, name=body.name, client=client_info(request))
    key = await session.get(ApiKey, issued.id)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key, from_attributes=True).model_dump(), token=issued.token)


@router.delete("/apikeys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep) -> None:
    if not await revoke_api_key(session, user, key_id, client_info(request)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such API key")


class WsTicketOut(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` when opening a WebSocket; valid once, for a minute.")
    expires_at: datetime


@router.post("/ws-ticket", status_code=status.HTTP_201_CREATED)
async def create_ws_ticket(user: CurrentUser, session: SessionDep) -> WsTicketOut:
    """A browser opens a WebSocket with a ticket rather than its long-lived credential in the URL."""
    ticket, expires = await issue_ws_ticket(session, user)
    return WsTicketOut(ticket=ticket, expires_at=expires)


@router.get("/workspaces")
async def list_workspaces(user: CurrentUser, session: SessionDep) -> list[WorkspaceOut]:
    rows = await session.execute(
        select(Workspace, col(WorkspaceMember.role))
        .join(WorkspaceMember, col(WorkspaceMember.workspace_id) == Workspace.id)
        .where(col(WorkspaceMember.user_id) == user.id)
        .order_by(col(Workspace.created_at))
    )
    return [WorkspaceOut(id=w.id, name=w.name, slug=w.slug, role=Role(role)) for w, role in rows]


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = Field(description="The session this request came with.")


@router.get("/sessions")
async def sessions(request: Request, user: CurrentUser, session: SessionDep) -> list[SessionOut]:
    """The caller's live browser sessions, most recently used first."""
    current = getattr(request.state, "session_id", None)
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            expires_at=s.expires_at,
            user_agent=s.user_agent,
            ip=s.ip,
            current=s.id == current,
        )
        for s in await list_sessions(session, user)
    ]


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(session_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep) -> None:
    """Sign a session out (e.g. a lost laptop). Only the caller's own sessions are found."""
    if not await revoke_session(session, user, session_id, client_info(request)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")


class AuditOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    user_id: uuid.UUID | None
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


@router.get("/audit")
async def audit_events(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    action: Annotated[str | None, Query(max_length=100, description="Only this action, e.g. `signin`.")] = None,
    everyone: Annotated[bool, Query(description="Admins: every user's events (and those of no user).")] = False,
) -> list[AuditOut]:
    """Security events, newest first: the caller's own; an admin may ask for everyone's."""
    if everyone and not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can see everyone's events")
    query = select(AuditLog).order_by(col(AuditLog.created_at).desc()).limit(limit)
    if not everyone:
        query = query.where(col(AuditLog.user_id) == user.id)
    if action:
        query = query.where(col(AuditLog.action) == action)
    return [AuditOut.model_validate(e, from_attributes=True) for e in (await session.execute(query)).scalars()]


class VocabularyIn(BaseModel):
    terms: list[str] = Field(max_length=1000, description="Names, products, jargon: each up to 60 characters.")


class VocabularyOut(BaseModel):
    terms: list[str]


@router.get("/vocabulary")
async def get_vocabulary(user: CurrentUser, session: SessionDep) -> VocabularyOut:
    """Your vocabulary: every transcription of your uploads is told these words."""
    return VocabularyOut(terms=await vocabulary.get_terms(session, user.id))


@router.put("/vocabulary")
async def put_vocabulary(
    body: VocabularyIn, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> VocabularyOut:
    """Replace your vocabulary (trimmed, de-duplicated, at most NEXUS_MAX_VOCABULARY_TERMS terms)."""
    try:
        terms = vocabulary.clean_terms(body.terms, runtime.settings)
    except BadInput as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    await vocabulary.set_terms(session, user.id, terms)
    return VocabularyOut(terms=terms)
