"""Following an append-only event table (job progress, chat tokens) from any process.

Writers `append` rows and `NOTIFY nexus_events, '<parent id>'` in the same transaction; readers wake on the
notification and read everything after their cursor by `seq`. A sequence hands out numbers at insert, not at
commit, so two concurrent writers could commit out of order and a reader past the later number would never see the
earlier one: `append` serializes writers per parent (a transaction-scoped advisory lock taken before the number is
drawn), which makes `seq` commit order for every parent a reader follows.
Postgres is already shared by the API and every worker, so this works wherever they run, a client that
reconnects simply starts over from a cursor, and a missed notification costs at most one fallback poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from nexus.core.db import lock_for_transaction, session_scope

E = TypeVar("E")
CHANNEL = "nexus_events"
FALLBACK_POLL_S = 0.5
log = logging.getLogger("nexus.core.eventlog")


async def append(session: AsyncSession, parent_id: uuid.UUID, *events: Any) -> None:
    """Add events of `parent_id` in the caller's transaction and wake its readers when that commits."""
    await lock_for_transaction(session, str(parent_id))
    session.add_all(events)
    await session.flush()
    await session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(parent_id)})


class _Listener:
    """One LISTEN connection per process and database, fanning notifications out to waiting readers."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.conn: Any = None
        self.lock = asyncio.Lock()

    async def ensure(self) -> bool:
        if self.conn is not None and not self.conn.is_closed():
            return True
        async with self.lock:
            if self.conn is not None and not self.conn.is_closed():
                return True
            try:
                import asyncpg

                self.conn = await asyncpg.connect(self.dsn)
                await self.conn.add_listener(CHANNEL, self._on_notify)
            except Exception as exc:  # fall back to polling; never break a stream over this
                log.warning("LISTEN unavailable, polling instead: %s", exc)
                self.conn = None
                return False
        return True

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for event in self.waiters.get(payload, ()):
            event.set()


_listeners: dict[tuple[int, str], _Listener] = {}


def _listener(engine: AsyncEngine) -> _Listener:
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    key = (id(asyncio.get_running_loop()), dsn)
    if key not in _listeners:
        _listeners[key] = _Listener(dsn)
    return _listeners[key]


async def close_listeners() -> None:
    for key, listener in list(_listeners.items()):
        if listener.conn is not None and not listener.conn.is_closed():
            with contextlib.suppress(Exception):
                await listener.conn.close()
        _listeners.pop(key, None)


async def follow(
    engine: AsyncEngine,
    event_model: type[E],
    parent_model: type[Any],
    parent_fk: Any,
    parent_id: uuid.UUID,
    *,
    after_seq: int = 0,
    is_terminal: Callable[[E], bool],
) -> AsyncIterator[E]:
    """Yield events with seq > after_seq in order, then new ones as written, until a terminal one (or the parent
    row disappears, e.g. deleted meanwhile). Each batch is read in a short transaction and yielded after it
    closes, so a slow client holds no pooled connection."""
    listener = _listener(engine)
    listening = await listener.ensure()
    wake = asyncio.Event()
    key = str(parent_id)
    listener.waiters[key].add(wake)
    cursor = after_seq
    seq_col = event_model.seq  # type: ignore[attr-defined]
    try:
        while True:
            wake.clear()
            async with session_scope(engine) as session:
                if await session.get(parent_model, parent_id) is None:
                    return
                query = select(event_model).where(parent_fk == parent_id, seq_col > cursor).order_by(seq_col)
                batch = list((await session.execute(query)).scalars())
            for event in batch:
                cursor = event.seq  # type: ignore[attr-defined]
                yield event
                if is_terminal(event):
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), FALLBACK_POLL_S if listening else 0.1)
    finally:
        listener.waiters[key].discard(wake)
        if not listener.waiters[key]:
            listener.waiters.pop(key, None)
