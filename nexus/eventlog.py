"""Following an append-only event table (job progress, chat tokens) from any process.

Writers insert rows; readers poll by `seq`. Postgres is already shared by the API and every worker, so this works
wherever they run, and a client that reconnects just starts over from a cursor. Polling every 100 ms costs one
indexed query per stream per tick, which is fine at this scale (LISTEN/NOTIFY can replace the sleep later).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from nexus.db import session_scope

E = TypeVar("E")
POLL_S = 0.1


async def follow(
    engine: AsyncEngine,
    event_model: type[E],
    parent_model: type[Any],
    parent_fk: Any,
    parent_id: uuid.UUID,
    *,
    after_seq: int = 0,
    is_terminal: Callable[[E], bool],
    poll_s: float = POLL_S,
) -> AsyncIterator[E]:
    """Yield events with seq > after_seq in order, then new ones as written, until a terminal one (or the parent
    row disappears, e.g. deleted meanwhile)."""
    cursor = after_seq
    seq_col = event_model.seq  # type: ignore[attr-defined]
    while True:
        async with session_scope(engine) as session:
            if await session.get(parent_model, parent_id) is None:
                return
            events = (
                await session.execute(
                    select(event_model).where(parent_fk == parent_id, seq_col > cursor).order_by(seq_col)
                )
            ).scalars()
            for event in events:
                cursor = event.seq  # type: ignore[attr-defined]
                yield event
                if is_terminal(event):
                    return
        await asyncio.sleep(poll_s)
