"""Nothing is written, or left, for a deleted item (hardening item 8): a step that finishes after the delete
takes back what it wrote, and the orphan sweep removes whatever a crash left behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError
from temporalio.client import Client

from models import MediaItem, SourceType
from nexus.core.db import session_maker, session_scope
from nexus.core.errors import BadInput
from nexus.media import processing, repository
from nexus.media.repository import media_prefix
from nexus.media.service import delete_media, sweep_orphans
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def test_a_fetch_that_finishes_after_the_delete_leaves_nothing(
    runtime: Runtime, make_account: MakeAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_account()
    tone = tmp_path / "tone.wav"
    make_tone = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(tone)]
    await asyncio.to_thread(subprocess.run, make_tone, check=True)
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner.user.id, source_type=SourceType.file)
        media.original_key = f"{media_prefix(owner.user.id, media.id)}/original.wav"
        session.add(media)
    runtime.store.put_file(media.original_key, tone)
    real_store_audio = repository.store_audio

    async def deleted_meanwhile(*args: object, **kwargs: object) -> bool:
        async with session_scope(runtime.engine) as session:  # the user deletes it while the step writes
            await session.execute(delete(MediaItem).where(MediaItem.id == media.id))
        return await real_store_audio(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "store_audio", deleted_meanwhile)
    with pytest.raises(BadInput, match="deleted"):
        await processing.fetch(runtime, media.id)
    assert list(runtime.store.list_objects(media_prefix(owner.user.id, media.id))) == []


async def test_the_sweep_removes_old_orphans_only(runtime: Runtime, make_account: MakeAccount, tmp_path: Path) -> None:
    owner = await make_account()
    async with session_scope(runtime.engine) as session:
        kept = MediaItem(owner_id=owner.user.id, source_type=SourceType.file)
        session.add(kept)
    orphan, fresh = uuid.uuid4(), uuid.uuid4()
    for media_id in (kept.id, orphan, fresh):
        runtime.store.put_bytes(f"{media_prefix(owner.user.id, media_id)}/audio.wav", b"RIFF")
    hour_ago = time.time() - 7200
    root = Path(runtime.settings.objects_url.removeprefix("file://"))
    for media_id in (kept.id, orphan):  # the local store's mtime is the object's age
        os.utime(root / media_prefix(owner.user.id, media_id) / "audio.wav", (hour_ago, hour_ago))

    assert await sweep_orphans(runtime) >= 1

    def present(media_id: uuid.UUID) -> bool:
        return runtime.store.exists(f"{media_prefix(owner.user.id, media_id)}/audio.wav")

    assert not present(orphan)
    assert present(kept.id)  # its row exists
    assert present(fresh)  # too young: an upload is stored moments before its row commits


async def test_a_delete_whose_commit_fails_leaves_the_item_whole(
    runtime: Runtime, temporal_client: Client, make_account: MakeAccount, tmp_path: Path
) -> None:
    """The objects were deleted before the commit: a commit that failed (the database gone for a moment, a 503)
    left the item listed with its original and audio gone, beyond any retry."""
    owner = await make_account()
    async with session_scope(runtime.engine) as session:
        media = MediaItem(owner_id=owner.user.id, source_type=SourceType.file)
        media.original_key = f"{media_prefix(owner.user.id, media.id)}/original.txt"
        session.add(media)
    (tmp_path / "original.txt").write_text("kept")
    runtime.store.put_file(media.original_key, tmp_path / "original.txt")

    async with session_maker(runtime.engine)() as session:
        found = await session.get(MediaItem, media.id)
        assert found is not None

        async def database_gone() -> None:
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))

        session.commit = database_gone  # type: ignore[method-assign]
        with pytest.raises(OperationalError):
            await delete_media(temporal_client, runtime, session, found)
        await session.rollback()
    async with session_scope(runtime.engine) as session:
        assert await session.get(MediaItem, media.id) is not None
    assert [key for key, _ in runtime.store.list_objects(media_prefix(owner.user.id, media.id))] == [media.original_key]

    async with session_maker(runtime.engine)() as session:  # and a delete that commits removes both
        found = await session.get(MediaItem, media.id)
        assert found is not None
        await delete_media(temporal_client, runtime, session, found)
    async with session_scope(runtime.engine) as session:
        assert await session.get(MediaItem, media.id) is None
    assert list(runtime.store.list_objects(media_prefix(owner.user.id, media.id))) == []
