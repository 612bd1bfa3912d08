"""The one authorization rule. Every route reaches user data through it (see `api.deps`), REST, SSE and
WebSocket alike.

    read    the row's owner, or a member of the row's workspace (any role)
    write   the row's owner, or an `owner`/`admin` of the row's workspace (change, delete, retry, cancel)

Personal things (API keys, sessions, memories) belong to one user and are never shared. A row the caller may
not see is answered exactly like a row that does not exist (404), so ids reveal nothing.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import Role, WorkspaceMember
from models.base import OwnedModel

M = TypeVar("M", bound=OwnedModel)


class Action(enum.StrEnum):
    read = "read"
    write = "write"


WRITER_ROLES = (Role.owner, Role.admin)


def _workspaces(user_id: uuid.UUID, action: Action) -> Select[Any]:
    query = select(col(WorkspaceMember.workspace_id)).where(col(WorkspaceMember.user_id) == user_id)
    if action is Action.write:
        query = query.where(col(WorkspaceMember.role).in_([r.value for r in WRITER_ROLES]))
    return query


def permitted(model: type[M], user_id: uuid.UUID, action: Action = Action.read) -> Select[M]:
    """All rows of `model` the user may `action`: the base of every query over user data."""
    return select(model).where(
        or_(col(model.owner_id) == user_id, col(model.workspace_id).in_(_workspaces(user_id, action)))
    )


def visible_media_ids_sql(user_param: str) -> str:
    """The read rule as SQL: ids of the media items the user may read, for hand-written queries (hybrid search).
    A subquery on its own, so the planner can hash it once and probe it per candidate row."""
    return (
        f"SELECT id FROM media_items WHERE owner_id = :{user_param} OR workspace_id IN "
        f"(SELECT workspace_id FROM workspace_members WHERE user_id = :{user_param})"
    )


async def authorize(
    session: AsyncSession, model: type[M], user_id: uuid.UUID, obj_id: uuid.UUID, action: Action = Action.read
) -> M | None:
    """One row by id if the user may `action` it; None otherwise (callers answer 404 either way)."""
    query = permitted(model, user_id, action).where(col(model.id) == obj_id)
    return (await session.execute(query)).scalar_one_or_none()
