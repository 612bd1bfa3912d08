"""What the Temporal UI shows for a media run: readable, and never a secret."""

from __future__ import annotations

import uuid

from models import JobKind, MediaItem, MediaJob
from nexus.media.service import run_summary


def test_a_signed_url_loses_its_token_and_a_stored_source_type_reads_as_text() -> None:
    owner = uuid.uuid4()
    media = MediaItem(
        owner_id=owner, source_type="url", source_url="https://cdn.example.com/a/talk.mp3?X-Amz-Signature=s3cr3t"
    )  # type: ignore[arg-type]
    job = MediaJob(
        media_id=media.id, owner_id=owner, workflow_id="w", kind=JobKind.retranscribe, request={"language": "de"}
    )
    summary, details = run_summary(media, job)
    assert summary == "Re-transcribe cdn.example.com/a/talk.mp3"
    assert "s3cr3t" not in summary + details and str(media.id) in details and "language=de" in details
    upload = MediaItem(owner_id=owner, source_type="file", original_filename="interview.wav", title="Interview")  # type: ignore[arg-type]
    assert run_summary(upload, MediaJob(media_id=upload.id, owner_id=owner, workflow_id="w"))[0] == "Process Interview"


def test_a_long_title_in_any_script_is_clamped_to_the_ui_limit_without_breaking_a_character() -> None:
    from nexus.core.temporal import SUMMARY_BYTES, ui_summary

    clamped = ui_summary("Процесс " * 100)
    assert len(clamped.encode()) <= SUMMARY_BYTES and clamped.endswith("…") and "\ufffd" not in clamped
    assert ui_summary("short  title\n") == "short title"
