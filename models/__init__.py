"""All tables, imported here so Alembic's autogenerate and `SQLModel.metadata` see every one."""

from models.base import OwnedModel, TimestampedModel
from models.identity import ApiKey, AuditLog, Role, Session, User, Workspace, WorkspaceMember

__all__ = [
    "ApiKey",
    "AuditLog",
    "OwnedModel",
    "Role",
    "Session",
    "TimestampedModel",
    "User",
    "Workspace",
    "WorkspaceMember",
]
