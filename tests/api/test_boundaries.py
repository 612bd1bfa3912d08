"""Values at the database boundary (hardening items 10 and 12): what a model or tool returns is clipped to its
column instead of failing the step after the paid work, and a key's last-use stamp is written at most once a
minute, outside any request's transaction."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from models import ApiKey, MediaItem, SourceType
from models.base import utcnow
from nexus.core.db import session_scope
from nexus.identity.service import LAST_USED_RESOLUTION
from nexus.llm.providers import Enrichment
from nexus.media.repository import store_audio, store_enrichment
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def test_long_model_output_is_clipped_to_its_columns(runtime: Runtime, make_account: MakeAccount) -> None:
    owner = await make_account()
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner.user.id, source_type=SourceType.file)
        session.add(media)
    verbose = Enrichment(
        title="A title that goes on " * 60,  # 1,260 characters for a 500-character column
        summary="fine",
        tags=["x" * 90, "ok"],
        provider="gemini,openai,extractive," * 5,  # a repeated provider list
        model="m" * 300,
    )
    await store_enrichment(runtime.engine, media, verbose)
    await store_audio(
        runtime.engine,
        media.id,
        original_key="k",
        audio_key="a",
        duration_s=1.0,
        size_bytes=1,
        mime_type="t" * 400,
        has_video=False,
    )
    async with session_scope(runtime.engine) as session:
        stored = await session.get(MediaItem, media.id)
    assert stored is not None and stored.title is not None
    assert len(stored.title) == 500 and stored.title.endswith("…")
    assert len(stored.enrichment_provider or "") == 50 and len(stored.enrichment_model or "") == 100
    assert [len(t) for t in stored.tags] == [40, 2]
    assert len(stored.mime_type or "") == 100


async def test_a_keys_last_use_is_written_at_most_once_a_minute(
    api: httpx.AsyncClient, make_account: MakeAccount, runtime: Runtime
) -> None:
    account = await make_account()

    async def last_used() -> object:
        async with session_scope(runtime.engine) as session:
            return (
                await session.execute(select(ApiKey.last_used_at).where(ApiKey.user_id == account.user.id))
            ).scalar_one()

    assert (await api.get("/api/me", headers=account.headers)).status_code == 200
    first = await last_used()
    assert first is not None
    for _ in range(3):
        await api.get("/api/me", headers=account.headers)
    assert await last_used() == first  # no write per request
    stale = utcnow() - LAST_USED_RESOLUTION - timedelta(seconds=5)
    async with session_scope(runtime.engine) as session:
        await session.execute(update(ApiKey).where(ApiKey.user_id == account.user.id).values(last_used_at=stale))
    await api.get("/api/me", headers=account.headers)
    assert await last_used() > stale  # type: ignore[operator]
