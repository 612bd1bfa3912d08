"""All tables, imported here so Alembic's autogenerate and `SQLModel.metadata` see every one."""

from models.base import OwnedModel, TimestampedModel
from models.identity import ApiKey, AuditLog, Role, Session, User, Workspace, WorkspaceMember
from models.media import (
    JobEvent,
    MediaChunk,
    MediaItem,
    MediaJob,
    MediaStatus,
    SourceType,
    TranscriptSegment,
)

__all__ = [
    "ApiKey",
    "AuditLog",
    "JobEvent",
    "MediaChunk",
    "MediaItem",
    "MediaJob",
    "MediaStatus",
    "OwnedModel",
    "Role",
    "Session",
    "SourceType",
    "TimestampedModel",
    "TranscriptSegment",
    "User",
    "Workspace",
    "WorkspaceMember",
]
