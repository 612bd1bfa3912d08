"""The caller's own identity: profile, API keys, workspaces."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import col

from api.deps import CurrentUser, SessionDep
from models import ApiKey, Role, Workspace, WorkspaceMember
from nexus.identity.service import issue_api_key, issue_ws_ticket, revoke_api_key

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


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, is_admin=user.is_admin)


@router.get("/apikeys")
async def list_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyOut]:
    rows = (
        await session.execute(select(ApiKey).where(col(ApiKey.user_id) == user.id).order_by(col(ApiKey.created_at)))
    ).scalars()
    return [ApiKeyOut.model_validate(k, from_attributes=True) for k in rows]


@router.post("/apikeys", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    issued = await issue_api_key(session, user, name=body.name)
    key = await session.get(ApiKey, issued.id)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key, from_attributes=True).model_dump(), token=issued.token)


@router.delete("/apikeys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> None:
    if not await revoke_api_key(session, user, key_id):
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
