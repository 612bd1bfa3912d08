"""Attempt limits shared by every API process: fixed one-minute windows counted in Postgres.

Per-process memory would let an attacker multiply the limit by the number of API processes (and reset it by
waiting for a restart); a counter row per key and minute is one upsert, and old windows are swept as we go.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models.base import utcnow
from nexus.core.db import session_scope

WINDOW = timedelta(minutes=1)


def _window(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _retry_after(now: datetime) -> int:
    return max(1, math.ceil((_window(now) + WINDOW - now).total_seconds()))


async def hit(engine: AsyncEngine, keys: list[str], limit: int) -> int | None:
    """Count one attempt against every key; the seconds to wait if any key is now over `limit`, else None."""
    now = utcnow()
    worst = 0
    async with session_scope(engine) as session:
        for key in keys:
            count = (
                await session.execute(
                    text(
                        "INSERT INTO rate_limits (key, window_start, count) VALUES (:key, :window, 1) "
                        "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 "
                        "RETURNING count"
                    ),
                    {"key": key[:200], "window": _window(now)},
                )
            ).scalar_one()
            worst = max(worst, count)
        if random.random() < 0.02:
            await session.execute(text("DELETE FROM rate_limits WHERE window_start < :old"), {"old": now - 10 * WINDOW})
    return _retry_after(now) if worst > limit else None


async def blocked(session: AsyncSession, keys: list[str], limit: int) -> int | None:
    """Whether any key has used up its attempts this window (without counting one): seconds to wait, or None.
    A read in the caller's transaction (the API-key check's), so a request pays no extra round trip for it."""
    now = utcnow()
    count = (
        await session.execute(
            text("SELECT coalesce(max(count), 0) FROM rate_limits WHERE key = ANY(:keys) AND window_start = :w"),
            {"keys": [k[:200] for k in keys], "w": _window(now)},
        )
    ).scalar_one()
    return _retry_after(now) if count >= limit else None
