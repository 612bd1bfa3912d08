"""The security audit trail: who did what, from where, with what outcome. Never a secret or content.

Every event is also logged to `nexus.security` (one line, structured) so an operator's log pipeline can alert
on it (failed sign-ins, decryption failures, refresh failures) without reading the database.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models import AuditLog
from nexus.core.db import session_scope

log = logging.getLogger("nexus.security")


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, as recorded on sessions and audit events."""

    ip: str | None = None
    user_agent: str | None = None


NO_CLIENT = ClientInfo()


def record(
    session: AsyncSession,
    action: str,
    *,
    user_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    client: ClientInfo = NO_CLIENT,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction: it is kept exactly when the change it describes is."""
    session.add(
        AuditLog(
            user_id=user_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            ip=client.ip,
            user_agent=(client.user_agent or "")[:400] or None,
            details=details or {},
        )
    )
    level = logging.INFO if outcome == "success" else logging.WARNING
    log.log(
        level,
        "security event %s outcome=%s user=%s target=%s:%s ip=%s%s",
        action,
        outcome,
        user_id,
        target_type,
        target_id,
        client.ip,
        "".join(f" {k}={v}" for k, v in (details or {}).items()),
    )


async def record_now(engine: AsyncEngine, action: str, **kwargs: Any) -> None:
    """Record in a transaction of its own: for refusals, whose request is answered with an error and rolled back."""
    async with session_scope(engine) as session:
        record(session, action, **kwargs)
