"""Re-transcription never overwrites newer work: an older re-transcription cannot be retried over a newer run, and
a correction waits while any run of the item is unfinished (its swap would erase the correction)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from models import JobKind, MediaItem, MediaJob, MediaStatus, SourceType, TranscriptSegment
from models.base import utcnow
from nexus.core.db import session_scope
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def _item_with_runs(runtime: Runtime, owner_id: object, older: MediaStatus) -> tuple[MediaItem, MediaJob]:
    async with session_scope(runtime.engine) as session:
        media = MediaItem(
            owner_id=owner_id, source_type=SourceType.url, source_url="http://x/", status=MediaStatus.completed
        )  # type: ignore[arg-type]
        session.add(media)
        await session.flush()
        session.add(TranscriptSegment(media_id=media.id, owner_id=media.owner_id, idx=0, start_s=0, end_s=1, text="hi"))
        old = MediaJob(
            media_id=media.id, owner_id=media.owner_id, workflow_id=f"media-{media.id}", kind=JobKind.retranscribe,
            stage=older, started_at=utcnow() - timedelta(minutes=5), updated_at=utcnow(),
        )  # fmt: skip
        new = MediaJob(
            media_id=media.id, owner_id=media.owner_id, workflow_id=f"media-{media.id}", kind=JobKind.retranscribe,
            stage=MediaStatus.completed, started_at=utcnow(),
        )  # fmt: skip
        session.add_all([old, new])
    return media, old


async def test_an_older_retranscription_cannot_be_retried_over_a_newer_run(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    me = await make_account()
    _media, old = await _item_with_runs(runtime, me.user.id, MediaStatus.failed)
    resp = await api.post(f"/api/jobs/{old.id}/retry", headers=me.headers)
    assert resp.status_code == 409 and "newer run" in resp.json()["detail"], resp.text
    async with session_scope(runtime.engine) as session:
        assert (await session.get(MediaJob, old.id)).stage == MediaStatus.failed  # type: ignore[union-attr]


async def test_a_correction_waits_while_any_run_of_the_item_is_unfinished(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    me = await make_account()
    media, _old = await _item_with_runs(runtime, me.user.id, MediaStatus.transcribing)
    resp = await api.patch(f"/api/media/{media.id}/segments/0", json={"text": "edited"}, headers=me.headers)
    assert resp.status_code == 409 and "re-transcribed" in resp.json()["detail"], resp.text


async def test_speaker_names_wait_for_a_run_and_two_renames_at_once_both_stay(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    """Names given during a re-transcription were wiped by its swap (or landed on new labels: other people), and
    two renames at once each read `{}` and kept only their own name, both answering 200."""
    me = await make_account()
    running, _old = await _item_with_runs(runtime, me.user.id, MediaStatus.transcribing)
    resp = await api.patch(f"/api/media/{running.id}/speakers", json={"S1": "Ada"}, headers=me.headers)
    assert resp.status_code == 409 and "processed" in resp.json()["detail"], resp.text
    bad_label = await api.patch(f"/api/media/{running.id}/speakers", json={"S1\n": "Ada"}, headers=me.headers)
    assert bad_label.status_code == 400  # a label is all of S1..S99: `$` let a trailing newline through

    media, _done = await _item_with_runs(runtime, me.user.id, MediaStatus.completed)
    answers = await asyncio.gather(
        *(
            api.patch(f"/api/media/{media.id}/speakers", json={label: name}, headers=me.headers)
            for label, name in [("S1", "Ada"), ("S2", "Grace"), ("S3", "Edsger")]
        )
    )
    assert [r.status_code for r in answers] == [200, 200, 200]
    detail = (await api.get(f"/api/media/{media.id}", headers=me.headers)).json()
    assert detail["speaker_names"] == {"S1": "Ada", "S2": "Grace", "S3": "Edsger"}
