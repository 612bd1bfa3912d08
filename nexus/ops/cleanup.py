"""The daily cleanup: rows whose life has ended, and stored objects no row points to.

Each rule is a plain async function over the engine (or the runtime) that returns how many it deleted, or with
`dry_run` how many it would delete (counted, nothing changed). Deletes go in bounded batches, each its own short
transaction, so a large backlog never becomes one giant transaction and a retried run goes on where the last one
stopped. The rules select only what no live code path can still use:

- browser sessions past their absolute expiry or idle past the idle lifetime, or of a deactivated user: exactly
  what `nexus.identity.sessions.authenticate_session` refuses and deletes when it meets one (sign-out and revoke
  delete their row at once);
- OAuth states and WebSocket tickets past their expiry (both are refused once expired);
- rate-limit counters of windows that have closed (only the current window is ever read);
- token events of finished chat turns older than `NEXUS_CHAT_EVENTS_RETENTION_DAYS`: never a running turn's, and
  never a turn's terminal event (`final` / `error`), so replaying an old turn still ends with its stored answer;
- stored objects of media items that have no row, older than the upload grace (`nexus.media.service.sweep_orphans`):
  a live item's objects are never touched.

`run_cleanup` runs them all and returns a `CleanupReport`; the `Cleanup` workflow (daily schedule `cleanup`) and
`nexus cleanup` call it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from models import (
    ChatTurn,
    MediaJob,
    OAuthState,
    RateLimitHit,
    Session,
    TranscriptDraft,
    TurnEvent,
    User,
    WsTicket,
)
from models.base import utcnow
from models.media import TERMINAL
from nexus.core.db import session_scope
from nexus.identity import audit
from nexus.identity.ratelimit import WINDOW
from nexus.media.contracts import CleanupReport
from nexus.media.service import sweep_orphans
from nexus.runtime import Runtime

__all__ = ["CleanupReport", "run_cleanup"]

BATCH = 1000
"""Rows deleted per transaction."""
TERMINAL_TURN_EVENTS = ("final", "error")  # as nexus.chat.service.TERMINAL_KINDS: a replay ends at one of them
log = logging.getLogger("nexus.ops")


async def _purge(
    engine: AsyncEngine, model: Any, keys: list[Any], where: ColumnElement[bool], *, dry_run: bool, batch: int
) -> int:
    """Delete the rows of `model` matching `where`, `batch` rows per transaction (rows another transaction holds
    locked are skipped, never waited for: the next run takes them). With `dry_run`, only count them."""
    if dry_run:
        async with session_scope(engine) as session:
            return int((await session.execute(select(func.count()).select_from(model).where(where))).scalar_one())
    chosen = select(*keys).where(where).limit(batch).with_for_update(skip_locked=True)
    target = keys[0] if len(keys) == 1 else tuple_(*keys)
    total = 0
    while True:
        async with session_scope(engine) as session:
            gone = len((await session.execute(delete(model).where(target.in_(chosen)).returning(keys[0]))).all())
        total += gone
        if gone < batch:
            return total


async def expired_sessions(
    engine: AsyncEngine, idle: timedelta, *, now: datetime, dry_run: bool = False, batch: int = BATCH
) -> int:
    """Sessions past their absolute expiry, idle for `idle` or longer, or of a deactivated user."""
    inactive = select(col(User.id)).where(col(User.is_active).is_(False))
    where = or_(
        col(Session.expires_at) <= now, col(Session.last_seen_at) <= now - idle, col(Session.user_id).in_(inactive)
    )
    return await _purge(engine, Session, [col(Session.id)], where, dry_run=dry_run, batch=batch)


async def expired_oauth_states(engine: AsyncEngine, *, now: datetime, dry_run: bool = False, batch: int = BATCH) -> int:
    where = col(OAuthState.expires_at) < now
    return await _purge(engine, OAuthState, [col(OAuthState.id)], where, dry_run=dry_run, batch=batch)


async def expired_ws_tickets(engine: AsyncEngine, *, now: datetime, dry_run: bool = False, batch: int = BATCH) -> int:
    where = col(WsTicket.expires_at) < now
    return await _purge(engine, WsTicket, [col(WsTicket.id)], where, dry_run=dry_run, batch=batch)


async def old_rate_limit_hits(engine: AsyncEngine, *, now: datetime, dry_run: bool = False, batch: int = BATCH) -> int:
    """Counters whose one-minute window has ended (a window is only read while it is the current one)."""
    keys = [col(RateLimitHit.key), col(RateLimitHit.window_start)]
    where = col(RateLimitHit.window_start) < now - WINDOW
    return await _purge(engine, RateLimitHit, keys, where, dry_run=dry_run, batch=batch)


async def old_turn_events(
    engine: AsyncEngine, retention: timedelta, *, now: datetime, dry_run: bool = False, batch: int = BATCH
) -> int:
    """Token events older than `retention` of turns that are no longer running. Each turn keeps its terminal event
    (`final` names the stored answer message), so a replay of the turn still ends instead of waiting forever."""
    finished = select(col(ChatTurn.id)).where(col(ChatTurn.status) != "running")
    where = (
        (col(TurnEvent.created_at) < now - retention)
        & col(TurnEvent.kind).not_in(TERMINAL_TURN_EVENTS)
        & col(TurnEvent.turn_id).in_(finished)
    )
    return await _purge(engine, TurnEvent, [col(TurnEvent.id)], where, dry_run=dry_run, batch=batch)


async def old_drafts(
    engine: AsyncEngine, retention: timedelta, *, now: datetime, dry_run: bool = False, batch: int = BATCH
) -> int:
    """Re-transcription drafts older than `retention` whose run has ended: applied ones hold only the enrichment
    that was swapped in, and a failed run this old is not going to be retried (a retry would simply redo it)."""
    ended = select(col(MediaJob.id)).where(col(MediaJob.stage).in_(TERMINAL))
    where = (col(TranscriptDraft.created_at) < now - retention) & col(TranscriptDraft.job_id).in_(ended)
    return await _purge(engine, TranscriptDraft, [col(TranscriptDraft.id)], where, dry_run=dry_run, batch=batch)


async def run_cleanup(
    runtime: Runtime, *, dry_run: bool = False, now: datetime | None = None, batch: int = BATCH
) -> CleanupReport:
    """Every cleanup rule once, as of `now` (default: the current time); logs one line with the counts on the
    `nexus.ops` logger and returns them. `dry_run`: count what would be deleted and delete nothing."""
    now = now or utcnow()
    settings, engine = runtime.settings, runtime.engine
    report = CleanupReport(
        dry_run=dry_run,
        sessions=await expired_sessions(
            engine, timedelta(minutes=settings.session_idle_minutes), now=now, dry_run=dry_run, batch=batch
        ),
        oauth_states=await expired_oauth_states(engine, now=now, dry_run=dry_run, batch=batch),
        ws_tickets=await expired_ws_tickets(engine, now=now, dry_run=dry_run, batch=batch),
        rate_limits=await old_rate_limit_hits(engine, now=now, dry_run=dry_run, batch=batch),
        turn_events=await old_turn_events(
            engine, timedelta(days=settings.chat_events_retention_days), now=now, dry_run=dry_run, batch=batch
        ),
        orphaned_media=await sweep_orphans(runtime, dry_run=dry_run),
        drafts=await old_drafts(
            engine, timedelta(days=settings.draft_retention_days), now=now, dry_run=dry_run, batch=batch
        ),
    )
    counts = report.model_dump()
    if not dry_run:  # what /metrics sums as nexus_cleanup_deleted_total{kind}
        await audit.record_now(engine, "ops.cleanup", target_type="cleanup", details=counts)
    log.info(
        "cleanup %s",
        " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in counts.items()),
        extra={"cleanup": counts},
    )
    return report
