"""The near-duplicate decision on real Postgres: copies submitted at the same moment yield exactly one original."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from models import MediaItem, SourceType
from nexus.core.db import session_scope
from nexus.media.repository import settle_duplicate
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def test_identical_copies_decided_at_once_leave_exactly_one_original(
    runtime: Runtime, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    async with session_scope(runtime.engine) as session:
        copies = [MediaItem(owner_id=owner.user.id, source_type=SourceType.file, duration_s=30.0) for _ in range(4)]
        foreign = MediaItem(owner_id=other.user.id, source_type=SourceType.file, duration_s=30.0)
        session.add_all([*copies, foreign])

    async def same_audio(_duration: float | None, encoded: str) -> tuple[bool, float]:
        await asyncio.sleep(0.05)  # comparing takes a while: the other decisions run meanwhile
        return encoded == "AQAAfingerprint", 0.0

    # The latest copy may well be decided first; whichever is, the others must find it.
    decided = await asyncio.gather(
        *(settle_duplicate(runtime.engine, m, "AQAAfingerprint", same_audio) for m in reversed(copies)),
        settle_duplicate(runtime.engine, foreign, "AQAAfingerprint", same_audio),
    )
    originals = [m for m, d in zip([*reversed(copies)], decided[:4], strict=True) if d is None]
    assert len(originals) == 1
    assert {d[0] for d in decided[:4] if d} == {originals[0].id}
    assert decided[4] is None  # another user's identical file is never compared with this user's

    async with session_scope(runtime.engine) as session:
        rows = (await session.execute(select(MediaItem).where(MediaItem.owner_id == owner.user.id))).scalars().all()
    assert all(r.fingerprint for r in rows)
    assert sorted(str(r.duplicate_of) for r in rows if r.duplicate_of) == [str(originals[0].id)] * 3
