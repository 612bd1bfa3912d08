"""Row ownership: the one way user data is selected.

A row is visible to a user when they own it, or when it belongs to a workspace they are a member of.
Every query over owned tables goes through `owned_by`, so forgetting the filter is not an option.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import WorkspaceMember
from models.base import OwnedModel

M = TypeVar("M", bound=OwnedModel)


def owned_by(model: type[M], user_id: uuid.UUID) -> Select[tuple[M]]:
    member_of = select(WorkspaceMember.workspace_id).where(WorkspaceMember.user_id == user_id)
    return select(model).where(or_(model.owner_id == user_id, model.workspace_id.in_(member_of)))


async def get_owned(session: AsyncSession, model: type[M], user_id: uuid.UUID, obj_id: uuid.UUID) -> M | None:
    """One row by id, only if `user_id` may see it (None otherwise, so callers answer 404 either way)."""
    return (await session.execute(owned_by(model, user_id).where(model.id == obj_id))).scalar_one_or_none()
