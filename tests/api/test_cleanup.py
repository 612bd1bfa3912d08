"""The daily cleanup (issue 13, item 7) on real Postgres and the object store: rows of every kind, some expired and
some live; a dry run counts and deletes nothing, a real run deletes exactly the expired ones, a running chat turn's
old events survive, and stored objects with no row go while a live item's objects stay."""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.client import Client

from models import (
    AuditLog,
    ChatTurn,
    Conversation,
    JobKind,
    MediaItem,
    MediaJob,
    MediaStatus,
    Message,
    OAuthState,
    RateLimitHit,
    Session,
    SourceType,
    TranscriptDraft,
    TurnEvent,
    User,
    WsTicket,
)
from models.base import utcnow
from nexus.core.crypto import Sealed
from nexus.core.db import session_scope
from nexus.core.orchestration import CLEANUP_WORKFLOW
from nexus.identity.oauth import verifier_context
from nexus.media.contracts import CleanupReport, MaintenanceInput
from nexus.media.repository import media_prefix
from nexus.ops.cleanup import run_cleanup
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden


@dataclass
class Seeded:
    """Ids of the rows and objects one test wrote, by table: what must go, and what must stay."""

    expired: dict[str, set[Any]] = field(default_factory=dict)
    live: dict[str, set[Any]] = field(default_factory=dict)
    objects_gone: list[str] = field(default_factory=list)
    objects_kept: list[str] = field(default_factory=list)


def _token() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


async def seed(runtime: Runtime, make_account: MakeAccount, now: datetime) -> Seeded:
    owner, gone = await make_account(), await make_account()
    idle = timedelta(minutes=runtime.settings.session_idle_minutes)
    day = timedelta(days=1)
    s = Seeded()
    async with session_scope(runtime.engine) as session:
        await session.execute(update(User).where(col(User.id) == gone.user.id).values(is_active=False))

        def browser(user_id: uuid.UUID, expires: datetime, seen: datetime) -> uuid.UUID:
            row = Session(user_id=user_id, token_hash=_token(), expires_at=expires, last_seen_at=seen)
            session.add(row)
            return row.id

        s.live["sessions"] = {browser(owner.user.id, now + day, now - timedelta(minutes=5))}
        s.expired["sessions"] = {
            browser(owner.user.id, now - timedelta(seconds=1), now - timedelta(minutes=5)),  # absolute expiry
            browser(owner.user.id, now + day, now - idle - timedelta(minutes=1)),  # idle too long
            browser(gone.user.id, now + day, now - timedelta(minutes=5)),  # the user was deactivated
        }

        def state(expires: datetime) -> uuid.UUID:
            row_id = uuid.uuid4()
            session.add(
                OAuthState(
                    id=row_id,
                    state_hash=_token(),
                    browser_hash=_token(),
                    purpose="signin",
                    provider="google",
                    code_verifier=Sealed.of("verifier", verifier_context(row_id)),
                    expires_at=expires,
                )
            )
            return row_id

        s.live["oauth_states"] = {state(now + timedelta(minutes=5))}
        s.expired["oauth_states"] = {state(now - timedelta(minutes=1))}

        def ticket(expires: datetime) -> uuid.UUID:
            row = WsTicket(user_id=owner.user.id, token_hash=_token(), expires_at=expires)
            session.add(row)
            return row.id

        s.live["ws_tickets"] = {ticket(now + timedelta(seconds=30))}
        s.expired["ws_tickets"] = {ticket(now - timedelta(seconds=1)), ticket(now - day)}

        key = f"cleanup-test:{uuid.uuid4()}"
        current = now.replace(second=0, microsecond=0)
        for window in (current, current - timedelta(minutes=5), current - day):
            session.add(RateLimitHit(key=key, window_start=window, count=3))
        s.live["rate_limits"] = {(key, current)}
        s.expired["rate_limits"] = {(key, current - timedelta(minutes=5)), (key, current - day)}

        conversation = Conversation(owner_id=owner.user.id, title="old talk")
        session.add(conversation)
        await session.flush()
        turns = {}
        for n, status in enumerate(("completed", "running"), start=1):
            message = Message(conversation_id=conversation.id, owner_id=owner.user.id, role="user", content="hi")
            session.add(message)
            await session.flush()
            turns[status] = ChatTurn(
                owner_id=owner.user.id,
                conversation_id=conversation.id,
                turn=n,
                workflow_id=f"chat-{conversation.id}-{n}",
                user_message_id=message.id,
                status=status,
            )
            session.add(turns[status])
        await session.flush()

        def event(turn: ChatTurn, kind: str, age: timedelta) -> uuid.UUID:
            row = TurnEvent(turn_id=turn.id, kind=kind, data={}, created_at=now - age)  # type: ignore[call-arg]
            session.add(row)
            return row.id

        old, recent = timedelta(days=40), timedelta(days=10)  # past and within the 30-day retention
        s.expired["turn_events"] = {event(turns["completed"], "token", old), event(turns["completed"], "reset", old)}
        s.live["turn_events"] = {
            event(turns["completed"], "final", old),  # a replay of the turn still ends with its answer
            event(turns["completed"], "token", recent),
            *(event(turns["running"], "token", old) for _ in range(3)),  # never a running turn's events
        }
        live_item = MediaItem(owner_id=owner.user.id, source_type=SourceType.file)
        session.add(live_item)
        await session.flush()

        def draft(stage: MediaStatus, age: timedelta) -> uuid.UUID:
            job = MediaJob(
                media_id=live_item.id, owner_id=owner.user.id, workflow_id=f"media-{live_item.id}",
                kind=JobKind.retranscribe, stage=stage,
            )  # fmt: skip
            session.add(job)
            row = TranscriptDraft(job_id=job.id, media_id=live_item.id, owner_id=owner.user.id, created_at=now - age)
            session.add(row)
            return row.id

        s.expired["drafts"] = {draft(MediaStatus.failed, old), draft(MediaStatus.completed, old)}
        s.live["drafts"] = {draft(MediaStatus.transcribing, old), draft(MediaStatus.failed, recent)}  # running; recent

    root = Path(runtime.settings.objects_url.removeprefix("file://"))
    two_hours_ago = time.time() - 7200  # past the sweep's one-hour upload grace
    orphan, fresh_orphan = uuid.uuid4(), uuid.uuid4()
    for media_id, age in ((live_item.id, two_hours_ago), (orphan, two_hours_ago), (fresh_orphan, None)):
        for name in ("original.wav", "audio.wav"):
            key = f"{media_prefix(owner.user.id, media_id)}/{name}"
            runtime.store.put_bytes(key, b"RIFF")
            if age is not None:  # the local store's mtime is the object's age
                os.utime(root / key, (age, age))
            (s.objects_gone if media_id == orphan else s.objects_kept).append(key)
    return s


async def present(runtime: Runtime, seeded: Seeded) -> dict[str, set[Any]]:
    """Which of the seeded rows still exist, by table."""
    tables: dict[str, Any] = {
        "sessions": Session,
        "oauth_states": OAuthState,
        "ws_tickets": WsTicket,
        "turn_events": TurnEvent,
        "drafts": TranscriptDraft,
    }
    found: dict[str, set[Any]] = {}
    async with session_scope(runtime.engine) as session:
        for name, model in tables.items():
            ids = seeded.expired[name] | seeded.live[name]
            found[name] = set((await session.execute(select(model.id).where(model.id.in_(ids)))).scalars())
        keys = {k for k, _ in seeded.live["rate_limits"]}
        rows = await session.execute(
            select(RateLimitHit.key, RateLimitHit.window_start).where(col(RateLimitHit.key).in_(keys))
        )
        found["rate_limits"] = {(k, w) for k, w in rows.all()}
    return found


async def test_a_dry_run_counts_and_a_real_run_deletes_exactly_what_expired(
    runtime: Runtime, make_account: MakeAccount, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    seeded = await seed(runtime, make_account, now)
    everything = {name: seeded.expired[name] | seeded.live[name] for name in seeded.expired}
    expected = {name: len(ids) for name, ids in seeded.expired.items()} | {"orphaned_media": 1}

    with caplog.at_level(logging.INFO, logger="nexus.ops"):
        dry = await run_cleanup(runtime, dry_run=True, now=now)
    assert dry.dry_run
    for kind, n in expected.items():  # the database is shared with other tests: at least ours
        assert getattr(dry, kind) >= n, kind
    assert await present(runtime, seeded) == everything
    assert all(runtime.store.exists(k) for k in seeded.objects_gone + seeded.objects_kept)
    line = next(r for r in caplog.records if r.name == "nexus.ops" and r.getMessage().startswith("cleanup "))
    assert "dry_run=true" in line.getMessage() and f"sessions={dry.sessions}" in line.getMessage()

    report = await run_cleanup(runtime, now=now, batch=2)  # small batches: the loop runs several transactions
    assert not report.dry_run
    for kind, n in expected.items():
        assert getattr(report, kind) >= n, kind
    assert await present(runtime, seeded) == seeded.live
    assert not any(runtime.store.exists(k) for k in seeded.objects_gone)
    assert all(runtime.store.exists(k) for k in seeded.objects_kept)  # a live item's, and one still uploading

    async with session_scope(runtime.engine) as session:  # each real run is recorded, for /metrics to count
        logged = (
            await session.execute(
                select(AuditLog.details).where(col(AuditLog.action) == "ops.cleanup").order_by(col(AuditLog.created_at))
            )
        ).scalars().all()  # fmt: skip
    assert logged[-1] == report.model_dump() and all(not d["dry_run"] for d in logged)

    again = await run_cleanup(runtime, dry_run=True, now=now)  # nothing expired is left
    assert {kind: getattr(again, kind) for kind in seeded.expired} == dict.fromkeys(seeded.expired, 0)


async def test_the_cleanup_workflow_runs_on_the_workers_and_honours_the_dry_run_setting(
    runtime: Runtime, workers: None, temporal_client: Client, make_account: MakeAccount
) -> None:
    """The workflow and its activity are registered on the real workers; NEXUS_CLEANUP_DRY_RUN makes a scheduled
    run (whose input asks for a real one) only report."""
    now = utcnow()
    account = await make_account()
    async with session_scope(runtime.engine) as session:
        stale = Session(
            user_id=account.user.id, token_hash=_token(), expires_at=now - timedelta(hours=1), last_seen_at=now
        )
        session.add(stale)
    with overridden(runtime.settings, cleanup_dry_run=True):
        report = await temporal_client.execute_workflow(
            CLEANUP_WORKFLOW,
            MaintenanceInput(queues=runtime.queues),
            id=f"cleanup-test-{uuid.uuid4()}",
            task_queue=runtime.queues.workflows,
            result_type=CleanupReport,
            execution_timeout=timedelta(minutes=2),
        )
    assert report.dry_run and report.sessions >= 1
    async with session_scope(runtime.engine) as session:
        assert await session.get(Session, stale.id) is not None
