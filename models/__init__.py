"""All tables, imported here so Alembic's autogenerate and `SQLModel.metadata` see every one."""

from models.base import OwnedModel, TimestampedModel
from models.chat import ChatTurn, Conversation, Message, Persona, TurnEvent
from models.identity import ApiKey, AuditLog, Role, Session, User, Workspace, WorkspaceMember, WsTicket
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
    "ChatTurn",
    "Conversation",
    "JobEvent",
    "MediaChunk",
    "MediaItem",
    "MediaJob",
    "MediaStatus",
    "Message",
    "OwnedModel",
    "Persona",
    "Role",
    "Session",
    "SourceType",
    "TimestampedModel",
    "TranscriptSegment",
    "TurnEvent",
    "User",
    "Workspace",
    "WorkspaceMember",
    "WsTicket",
]
