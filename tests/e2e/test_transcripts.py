"""Transcripts a user can trust, on the whole stack with the real models: a recording that switches language
keeps both halves (each segment with its language), the warning when no multilingual model is configured, a
forced language, the user's vocabulary reaching the model, and word timings."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from nexus.media.repository import get_media
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, follow_job, overridden
from tests.fake_llm import FakeLLM
from tests.harness import LiveServer
from tests.media_fixtures import ffmpeg, speak

ENGLISH = "The weather in the mountains was cold this morning, and the hikers waited for the sun before the climb."
SPANISH = "Por la tarde fuimos en tren a Madrid, donde dormimos en un pequeño hotel cerca de la estación."
CALLER = "My order of garden chairs arrived broken, and I would like a replacement before the weekend."
AGENT = "Thank you for calling the support line, let me look up your account and the delivery."
BRAND = "Yesterday we installed Quorvex on every laptop, and Quorvex now backs up our files each night."


def espeak(text: str, dest: Path, voice: str) -> Path:
    import subprocess

    subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(dest), text], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speech")
    en, es = espeak(ENGLISH, root / "en.wav", "en"), espeak(SPANISH, root / "es.wav", "es")
    both = root / "en_es.mp3"
    ffmpeg("-i", str(en), "-i", str(es), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", str(both))
    one, two = espeak(CALLER, root / "caller.wav", "en-us"), espeak(AGENT, root / "agent.wav", "en+f3")
    call = root / "call.wav"  # one speaker per channel, talking over each other from the second second on
    mono = "aformat=sample_fmts=s16:channel_layouts=mono,apad=whole_dur=14"
    graph = f"[0:a]{mono}[a];[1:a]adelay=1500,{mono}[b];[a][b]amerge=inputs=2[out]"
    ffmpeg("-i", str(one), "-i", str(two), "-filter_complex", graph, "-map", "[out]", str(call))
    dialogue = root / "dialogue.wav"  # the same two voices taking turns on one channel
    ffmpeg("-i", str(one), "-i", str(two), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", "-ac", "1", str(dialogue))
    return {
        "en_es": both,
        "es": es,
        "brand": speak(BRAND, root / "brand.wav", speed=140),
        "call": call,
        "dialogue": dialogue,
    }


async def upload(api: httpx.AsyncClient, headers: dict[str, str], path: Path, **form: str) -> dict:
    with path.open("rb") as fh:
        resp = await api.post("/api/media/upload", files={"file": (path.name, fh)}, data=form, headers=headers)
    assert resp.status_code == 202, resp.text
    events = await follow_job(api, headers, resp.json()["job_id"])
    assert events[-1]["stage"] == "completed", events[-1]
    return (await api.get(f"/api/media/{resp.json()['media_id']}", headers=headers)).json()


def text_of(item: dict, language: str | None = None) -> str:
    return " ".join(s["text"] for s in item["segments"] if language is None or s["language"] == language).lower()


async def test_a_recording_that_switches_language_keeps_both_halves(
    live_api: LiveServer, make_account: MakeAccount, speech: dict[str, Path]
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60, headers=account.headers) as api:
        item = await upload(api, account.headers, speech["en_es"], translate="true")
        assert set(item["languages"]) == {"en", "es"} and item["languages"]["es"] > 4, item["languages"]
        assert "mountains" in text_of(item, "en") and "estación" in text_of(item, "es"), item["segments"]
        models = ["tiny.en", "base (multilingual)", "base (multilingual) (translate)"]
        assert item["transcription"]["models"] == models and item["transcription"]["translate"] is True
        assert item["transcription"]["warnings"] == []
        # The English translation: beside each Spanish segment (none for English ones), and found by search.
        english = " ".join(s["translation"] or "" for s in item["segments"] if s["language"] == "es").lower()
        assert "station" in english, item["segments"]
        assert all(s["translation"] is None for s in item["segments"] if s["language"] == "en")
        hits = (await api.post("/api/search", json={"query": "station", "mode": "keyword"})).json()["results"]
        [hit] = [h for h in hits if h["media_id"] == item["id"]]
        assert hit["track"] == "translation" and hit["start"] >= 6 and "station" in hit["snippet"].lower(), hit
    spanish = [s for s in item["segments"] if s["language"] == "es"]
    assert min(s["start"] for s in spanish) >= 6  # the second half (the English takes ~7 s)
    for segment in item["segments"]:  # word timings: inside their segment, in order
        words = segment["words"]
        assert words and all(segment["start"] - 0.5 <= w["start"] <= w["end"] <= segment["end"] + 0.5 for w in words)
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)


async def test_without_a_multilingual_model_the_item_says_what_was_not_transcribed(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount, speech: dict[str, Path]
) -> None:
    account = await make_account()
    with overridden(runtime.settings, whisper_multilingual_model="none"):
        async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
            item = await upload(api, account.headers, speech["en_es"])
    assert list(item["languages"]) == ["en"] and "mountains" in text_of(item)
    [warning, *_] = item["transcription"]["warnings"]
    assert "no multilingual model" in warning and " s to " in warning, item["transcription"]


async def test_a_forced_language_and_the_users_vocabulary_reach_the_model(
    live_api: LiveServer, make_account: MakeAccount, speech: dict[str, Path]
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60, headers=account.headers) as api:
        spanish = await upload(api, account.headers, speech["es"], language="es")
        assert {s["language"] for s in spanish["segments"]} == {"es"} and "estación" in text_of(spanish)
        assert spanish["transcription"]["language"] == "es"
        assert spanish["transcription"]["models"] == ["base (multilingual)"]

        saved = await api.put("/api/vocabulary", json={"terms": ["Quorvex", " quorvex ", "Night  Shift"]})
        assert saved.json() == {"terms": ["Quorvex", "Night Shift"]}
        assert (await api.get("/api/vocabulary")).json()["terms"] == ["Quorvex", "Night Shift"]
        taught = await upload(api, account.headers, speech["brand"], vocabulary="Backups")
        assert "quorvex" in text_of(taught), text_of(taught)
        assert taught["transcription"]["vocabulary"] == ["Quorvex", "Night Shift", "Backups"]

        # A search hit points at the second the word is spoken, not at the start of its passage.
        spoken = [w["start"] for s in taught["segments"] for w in s["words"] if "quorvex" in w["word"].lower()]
        hits = (await api.post("/api/search", json={"query": "Quorvex", "mode": "keyword"})).json()
        [hit] = [h for h in hits["results"] if h["media_id"] == taught["id"]]
        assert hit["at"] == spoken[0] and hit["at"] > hit["start"], (hit, spoken)

        bad = await api.post("/api/media/process", json={"url": "https://example.com/a.mp3", "language": "xx"})
        assert bad.status_code == 400 and "unknown language" in bad.json()["detail"]
        too_many = await api.put("/api/vocabulary", json={"terms": [f"term{i}" for i in range(101)]})
        assert too_many.status_code == 400 and "at most 100" in too_many.json()["detail"]


async def test_a_speaker_per_channel_is_heard_even_when_they_talk_at_once(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount, speech: dict[str, Path]
) -> None:
    account = await make_account()
    # A language model configured (speaking the OpenAI protocol on loopback) proposes names from what was said.
    fake = FakeLLM({"title": "Support call", "summary": "A broken order.", "tags": ["support"]})
    fake.content["speakers"] = [  # S7: a label the item lacks
        {"label": "S2", "name": " Jamie  from support "},
        {"label": "S7", "name": "Nobody"},
    ]
    try:
        with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
            async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
                item = await upload(api, account.headers, speech["call"])
    finally:
        fake.close()
    assert item["speaker_suggestions"] == {"S2": "Jamie from support"} and item["speaker_names"] == {}
    [asked] = [r["body"]["messages"][-1]["content"] for r in fake.requests if "response_format" in r["body"]]
    assert asked.startswith("S1: ") and "\nS2: " in asked, asked  # a line per turn, with its label
    by_speaker = {s["speaker"] for s in item["segments"]}
    assert by_speaker == {"S1", "S2"}, item["segments"]
    first = " ".join(s["text"] for s in item["segments"] if s["speaker"] == "S1").lower()
    second = " ".join(s["text"] for s in item["segments"] if s["speaker"] == "S2").lower()
    assert "garden" in first and "replacement" in first, first
    assert "support" in second and "account" in second, second
    starts = [s["start"] for s in item["segments"]]
    assert starts == sorted(starts)  # merged in time order

    async with httpx.AsyncClient(base_url=live_api.url, timeout=60, headers=account.headers) as api:
        # Names for the labels: in the item and in search results.
        named = await api.patch(f"/api/media/{item['id']}/speakers", json={"S1": "Ada", "S2": "Grace"})
        assert named.json() == {"names": {"S1": "Ada", "S2": "Grace"}}
        assert (await api.patch(f"/api/media/{item['id']}/speakers", json={"Bob": "x"})).status_code == 400
        again = (await api.get(f"/api/media/{item['id']}")).json()
        assert {s["speaker"] for s in again["segments"]} == {"Ada", "Grace"}
        hits = (await api.post("/api/search", json={"query": "garden", "mode": "keyword"})).json()
        assert [h["speaker"] for h in hits["results"] if h["media_id"] == item["id"]][:1] == ["Ada"]
        # ...and in the exports, with cues cut at word timings.
        vtt = await api.get(f"/api/media/{item['id']}/transcript.vtt")
        assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
        assert "<v Ada>" in vtt.text and "<v Grace>" in vtt.text
        srt = (await api.get(f"/api/media/{item['id']}/transcript.srt")).text
        assert srt.startswith("1\n00:00:0") and "Ada: " in srt and "Grace: " in srt
        exported = (await api.get(f"/api/media/{item['id']}/transcript.json")).json()
        assert exported["segments"][0]["words"][0]["start"] == again["segments"][0]["words"][0]["start"]
        assert (await api.get(f"/api/media/{item['id']}/transcript.doc")).status_code == 422

        # A correction: kept beside the original, and searchable at once (the passages were re-indexed).
        idx = next(i for i, s in enumerate(again["segments"]) if s["speaker"] == "Grace")
        fixed = await api.patch(
            f"/api/media/{item['id']}/segments/{idx}", json={"text": "Thank you for calling Zanzibar Furniture."}
        )
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["original_text"] == again["segments"][idx]["text"]
        hits = (await api.post("/api/search", json={"query": "Zanzibar", "mode": "keyword"})).json()
        assert [h["media_id"] for h in hits["results"]] == [item["id"]]
        semantic = (await api.post("/api/search", json={"query": "Zanzibar furniture", "mode": "semantic"})).json()
        assert item["id"] in [h["media_id"] for h in semantic["results"]]
        missing = await api.patch(f"/api/media/{item['id']}/segments/999", json={"text": "x"})
        assert missing.status_code == 404


async def test_ordinary_stereo_is_transcribed_once(
    live_api: LiveServer, make_account: MakeAccount, speech: dict[str, Path], tmp_path: Path
) -> None:
    stereo = tmp_path / "stereo.wav"
    ffmpeg("-i", str(speech["brand"]), "-ac", "2", str(stereo))  # the same sound on both channels
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
        item = await upload(api, account.headers, stereo)
    assert {s["speaker"] for s in item["segments"]} == {None} and "laptop" in text_of(item)


async def test_retranscription_swaps_in_at_once_and_a_failed_one_changes_nothing(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount, speech: dict[str, Path]
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60, headers=account.headers) as api:
        item = await upload(api, account.headers, speech["brand"])
        media_id, before = item["id"], item["segments"]
        assert item["transcription"]["models"] == ["tiny.en"]

        # Asked wrongly: a 4xx that says what to fix, and no run.
        assert (await api.post(f"/api/media/{media_id}/retranscribe", json={"model": "huge"})).status_code == 422
        assert (await api.post(f"/api/media/{media_id}/retranscribe", json={"speakers": 0})).status_code == 422
        bad = await api.post(f"/api/media/{media_id}/retranscribe", json={"language": "xx"})
        assert bad.status_code == 400 and "unknown language" in bad.json()["detail"]

        # A re-transcription that fails (no multilingual model to run) leaves the item as it was, files included.
        with overridden(runtime.settings, whisper_multilingual_model="none"):
            started = await api.post(f"/api/media/{media_id}/retranscribe", json={"model": "multilingual"})
            assert started.status_code == 202, started.text
            job_id = started.json()["job_id"]
            events = await follow_job(api, account.headers, job_id)
        assert events[-1]["stage"] == "failed" and "needs a multilingual model" in events[-1]["message"]
        after = (await api.get(f"/api/media/{media_id}")).json()
        assert after["status"] == "completed" and after["segments"] == before and after["error"] is None
        stored = await get_media(runtime.engine, uuid.UUID(media_id))
        assert stored and stored.audio_key and stored.original_key
        assert runtime.store.exists(stored.audio_key) and runtime.store.exists(stored.original_key)

        # Retried with the model available: while it runs, every search finds the old transcript, and the
        # item stays completed; then the new one is in place in one step.
        retried = await api.post(f"/api/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["kind"] == "retranscribe"
        busy = await api.post(f"/api/media/{media_id}/retranscribe", json={})
        assert busy.status_code == 409 and "being processed" in busy.json()["detail"]
        fix = await api.patch(f"/api/media/{media_id}/segments/0", json={"text": "lost edit"})
        assert fix.status_code == 409 and "re-transcribed" in fix.json()["detail"]
        seen: list[int] = []
        done = asyncio.create_task(follow_job(api, account.headers, job_id))
        while not done.done():
            hits = (await api.post("/api/search", json={"query": "laptop", "mode": "keyword"})).json()
            seen.append(sum(h["media_id"] == media_id for h in hits["results"]))
            state = (await api.get(f"/api/media/{media_id}")).json()
            assert state["status"] == "completed" and state["segments"], state
        assert (await done)[-1]["stage"] == "completed"
        assert len(seen) > 3 and min(seen) >= 1, seen  # never a moment without the item's passages
        new = (await api.get(f"/api/media/{media_id}")).json()
    assert new["transcription"]["models"] == ["base (multilingual)"] and new["transcription"]["model"] == "multilingual"
    assert "laptop" in text_of(new) and new["job_id"] == job_id


async def test_voices_on_one_channel_get_speaker_labels_and_a_failed_diarizer_keeps_the_words(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount, speech: dict[str, Path], tmp_path: Path
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
        item = await upload(api, account.headers, speech["dialogue"], speakers="2")
        assert item["transcription"]["speakers"] == 2 and "resemblyzer (speakers)" in item["transcription"]["models"]
        first = " ".join(s["text"] for s in item["segments"] if s["speaker"] == "S1").lower()
        second = " ".join(s["text"] for s in item["segments"] if s["speaker"] == "S2").lower()
        assert "garden" in first and "replacement" in first and "garden" not in second, item["segments"]
        assert "support" in second and "account" in second and "support" not in first, item["segments"]

        # The diarizer's model cannot be loaded: the transcript is complete, unlabelled, and says why.
        broken = tmp_path / "encoder.pt"
        broken.write_bytes(b"not a model")
        with overridden(runtime.settings, diarizer_model=str(broken)):
            plain = await upload(api, account.headers, speech["brand"], speakers="2")
    assert {s["speaker"] for s in plain["segments"]} == {None}
    assert "laptop" in text_of(plain) and plain["status"] == "completed"
    [warning] = plain["transcription"]["warnings"]
    assert warning.startswith("speakers were not labelled") and "complete without them" in warning
