"""All tables, imported here so Alembic's autogenerate and `SQLModel.metadata` see every one."""

from models.base import OwnedModel, TimestampedModel
from models.chat import ChatTurn, Conversation, Message, Persona, TurnEvent
from models.identity import (
    ApiKey,
    AuditLog,
    OAuthState,
    RateLimitHit,
    Role,
    Session,
    User,
    UserIdentity,
    Vocabulary,
    Workspace,
    WorkspaceMember,
    WsTicket,
)
from models.integrations import Integration, IntegrationStatus
from models.media import (
    JobEvent,
    JobKind,
    MediaChunk,
    MediaItem,
    MediaJob,
    MediaStatus,
    SourceType,
    TranscriptDraft,
    TranscriptSegment,
)
from models.ops import Deployment, EmbeddingModel, MemoryHistory, MemoryMessage, WorkerRegistration

__all__ = [
    "ApiKey",
    "AuditLog",
    "ChatTurn",
    "Conversation",
    "Deployment",
    "EmbeddingModel",
    "Integration",
    "IntegrationStatus",
    "JobEvent",
    "JobKind",
    "MediaChunk",
    "MediaItem",
    "MediaJob",
    "MediaStatus",
    "MemoryHistory",
    "MemoryMessage",
    "Message",
    "OAuthState",
    "OwnedModel",
    "Persona",
    "RateLimitHit",
    "Role",
    "Session",
    "SourceType",
    "TimestampedModel",
    "TranscriptDraft",
    "TranscriptSegment",
    "TurnEvent",
    "User",
    "UserIdentity",
    "Vocabulary",
    "WorkerRegistration",
    "Workspace",
    "WorkspaceMember",
    "WsTicket",
]
