"""Chat turns end to end: real Temporal, Postgres, Mem0; LLMs are loopback servers speaking their protocols."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowFailureError

from nexus.runtime import Runtime
from tests.conftest import MakeAccount, account_with_clips, activity_attempts, chat_turn, overridden, read_sse
from tests.fake_llm import FakeLLM
from tests.harness import LiveServer


@dataclass
class Archive:
    headers: dict[str, str]
    media: dict[str, str]


@pytest.fixture(scope="module")
async def archive(runtime: Runtime, live_api: LiveServer, clips: dict[str, Path]) -> Archive:
    return Archive(*await account_with_clips(runtime, live_api.url, clips, ["a_wav", "b_wav"], "chat"))


@pytest.fixture
def llm(runtime: Runtime) -> Iterator[FakeLLM]:
    fake = FakeLLM()
    with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
        yield fake
    fake.close()


def _answer(events: list[tuple[str, dict]]) -> str:
    text = ""
    for kind, data in events:
        if kind == "reset":
            text = ""
        elif kind == "token":
            text += data["text"]
    return text


async def test_offline_turn_quotes_passages_with_citations_and_is_stored(
    api: httpx.AsyncClient, archive: Archive
) -> None:
    events = await chat_turn(api, archive.headers, message="How many ships did the lighthouse keeper count?")
    kinds = [k for k, _ in events]
    assert kinds[0] == "turn" and kinds[-1] == "final" and "token" in kinds
    turn, final = events[0][1], events[-1][1]
    answer = _answer(events)
    assert answer == final["content"] and answer.startswith("No generative model is configured")
    assert "lighthouse" in answer.lower()
    cited = final["citations"][0]
    assert cited["media_id"] == archive.media["a_wav"] and 0 <= cited["start"] < cited["end"] <= 10
    assert final["provider"] == "extractive"

    messages = (await api.get(f"/api/conversations/{turn['conversation_id']}/messages", headers=archive.headers)).json()
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["id"] == final["message_id"] and messages[1]["citations"] == final["citations"]
    convs = (await api.get("/api/conversations", headers=archive.headers)).json()
    assert turn["conversation_id"] in [c["id"] for c in convs]
    # Stopping a turn that has ended changes nothing and says why.
    late = await api.post(f"/api/chat/{turn['turn_id']}/stop", headers=archive.headers)
    assert late.status_code == 409 and "already ended" in late.json()["detail"], late.text


async def test_tokens_stream_in_order_while_the_model_generates(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM
) -> None:
    llm.answer = "Seven ships passed the harbor at dawn, according to the keeper [1]."
    llm.chunk_delay_s = 0.1
    arrivals: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    async with api.stream(
        "POST", "/api/chat", json={"message": "How many ships?", "providers": ["openai"]}, headers=archive.headers
    ) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                arrivals.append((line[6:].strip(), loop.time()))
    kinds = [k for k, _ in arrivals]
    assert kinds.count("token") >= 3 and kinds[-1] == "final"
    first_token = next(t for k, t in arrivals if k == "token")
    assert arrivals[-1][1] - first_token > 0.3  # tokens arrived while generation was still running
    prompt = str(llm.chat_requests[-1]["body"])
    assert "lighthouse" in prompt.lower() and "How many ships?" in prompt  # retrieved context reached the model


async def test_disconnect_does_not_cancel_and_reconnect_replays_from_the_start(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM
) -> None:
    llm.answer = "one two three four five six seven eight nine ten"
    llm.chunk_delay_s = 0.15
    async with api.stream(
        "POST", "/api/chat", json={"message": "count to ten", "providers": ["openai"]}, headers=archive.headers
    ) as resp:
        first = await read_sse(resp, stop_after=2)  # the turn ids and a first token, then hang up
    turn_id = first[0][1]["turn_id"]
    assert first[1][0] == "token"
    async with api.stream("GET", f"/api/chat/{turn_id}/events", headers=archive.headers) as resp:
        replay = await read_sse(resp)
    assert replay[-1][0] == "final" and _answer(replay) == llm.answer
    messages = (
        await api.get(f"/api/conversations/{first[0][1]['conversation_id']}/messages", headers=archive.headers)
    ).json()
    assert [m["role"] for m in messages] == ["user", "assistant"]  # stored exactly once


async def test_sequential_and_parallel_chains(api: httpx.AsyncClient, archive: Archive, llm: FakeLLM) -> None:
    events = await chat_turn(
        api, archive.headers, message="What did the keeper do?", providers=["extractive", "openai"], mode="sequential"
    )
    final = events[-1][1]
    assert final["content"] == llm.answer  # the last provider's answer
    assert [r["provider"] for r in final["results"]] == ["extractive", "openai"]
    assert "A previous assistant drafted" in str(llm.chat_requests[-1]["body"])  # fed the first answer to the second
    assert "No generative model is configured" in str(llm.chat_requests[-1]["body"])

    events = await chat_turn(
        api, archive.headers, message="What did the keeper do?", providers=["openai", "extractive"], mode="parallel"
    )
    final = events[-1][1]
    assert {r["provider"] for r in final["results"]} == {"openai", "extractive"}
    assert llm.answer in final["content"] and "No generative model is configured" in final["content"]
    token_providers = {d["provider"] for k, d in events if k == "token"}
    assert token_providers == {"openai", "extractive"}


async def test_provider_errors_fail_the_turn_with_a_reason_or_retry(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM, temporal_client: Client
) -> None:
    sent = len(llm.chat_requests)
    llm.fail_with = [401]
    events = await chat_turn(api, archive.headers, message="hello?", providers=["openai"])
    assert events[-1][0] == "error" and "HTTP 401" in events[-1][1]["message"]
    assert len(llm.chat_requests) == sent + 1  # a 4xx is not retried
    assert await activity_attempts(temporal_client, events[0][1]["workflow_id"], "chat.generate") == [1]

    sent = len(llm.chat_requests)
    llm.fail_with = [503]
    events = await chat_turn(api, archive.headers, message="hello again?", providers=["openai"])
    assert events[-1][0] == "final" and events[-1][1]["content"] == llm.answer
    # The 503 was retried: the model was asked twice, and the answer came from the generation's second attempt.
    assert len(llm.chat_requests) == sent + 2 and llm.fail_with == []
    assert await activity_attempts(temporal_client, events[0][1]["workflow_id"], "chat.generate") == [2]
    assert "hello again?" in str(llm.chat_requests[-2]["body"]) and "hello again?" in str(llm.chat_requests[-1]["body"])


async def test_a_retry_does_not_ask_again_a_provider_that_had_answered(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM, temporal_client: Client
) -> None:
    """A chain whose second model failed (a 503) asked the first one again on the retry: paid twice. Each
    provider's finished answer is kept (a `part` event) and reused; the retry's stream still shows it."""
    sent = len(llm.chat_requests)
    llm.fail_with = [0, 503]  # the first provider answers, the second fails once
    events = await chat_turn(
        api, archive.headers, message="what did the keeper count?", providers=["openai", "openai"], mode="sequential"
    )
    kinds = [k for k, _ in events]
    assert kinds[-1] == "final" and "reset" in kinds, kinds
    assert await activity_attempts(temporal_client, events[0][1]["workflow_id"], "chat.generate") == [2]
    assert len(llm.chat_requests) == sent + 3  # first, failed second, second again: not the first a second time
    assert "A previous assistant drafted" in str(llm.chat_requests[-1]["body"])  # the kept draft fed the second
    after_reset = events[kinds.index("reset") :]
    assert "".join(d["text"] for k, d in after_reset if k == "token") == llm.answer * 2  # both answers, streamed
    assert [d["index"] for k, d in events if k == "part"] == [0, 1]  # the first kept once, from attempt 1
    assert [r["provider"] for r in events[-1][1]["results"]] == ["openai", "openai"]


async def test_bad_chat_requests_get_clear_4xx(api: httpx.AsyncClient, archive: Archive) -> None:
    for body, code, fragment in [
        ({"message": "  "}, 400, "empty"),
        ({"message": "hi", "providers": ["gemini"]}, 400, "not configured"),
        ({"message": "hi", "conversation_id": str(uuid.uuid4())}, 404, "no such conversation"),
        ({"message": "hi", "persona_id": str(uuid.uuid4())}, 404, "no such persona"),
        ({"message": "x" * 8001}, 422, ""),
    ]:
        resp = await api.post("/api/chat", json=body, headers=archive.headers)
        assert resp.status_code == code and fragment in str(resp.json()["detail"]), (body, resp.text)


async def test_personas_reach_the_prompt(api: httpx.AsyncClient, archive: Archive, llm: FakeLLM) -> None:
    created = await api.post(
        "/api/personas", json={"name": "Pirate", "instruction": "Speak like a pirate."}, headers=archive.headers
    )
    assert created.status_code == 201
    persona = created.json()
    updated = await api.put(
        f"/api/personas/{persona['id']}",
        json={"name": "Pirate", "instruction": "Speak like a pirate, matey."},
        headers=archive.headers,
    )
    assert updated.json()["instruction"].endswith("matey.")
    events = await chat_turn(api, archive.headers, message="Ahoy?", providers=["openai"], persona_id=persona["id"])
    assert "Speak like a pirate, matey." in str(llm.chat_requests[-1]["body"])
    conversation = events[0][1]["conversation_id"]
    # A follow-up that does not mention the persona keeps it; an explicit null goes back to the default voice
    # (it changed nothing before: a persona, once chosen, could not be taken off a conversation).
    await chat_turn(api, archive.headers, message="And then?", providers=["openai"], conversation_id=conversation)
    assert "Speak like a pirate, matey." in str(llm.chat_requests[-1]["body"])
    plainly = {"message": "Plainly now.", "providers": ["openai"], "conversation_id": conversation, "persona_id": None}
    await chat_turn(api, archive.headers, **plainly)
    assert "Speak like a pirate" not in str(llm.chat_requests[-1]["body"])
    listed = {c["id"]: c for c in (await api.get("/api/conversations", headers=archive.headers)).json()}
    assert listed[conversation]["persona_id"] is None
    assert (await api.delete(f"/api/personas/{persona['id']}", headers=archive.headers)).status_code == 204
    assert (await api.get(f"/api/personas/{persona['id']}", headers=archive.headers)).status_code == 404


async def _memories(api: httpx.AsyncClient, headers: dict[str, str], containing: str, timeout: float = 60) -> list:
    async with asyncio.timeout(timeout):
        while True:
            found = [m for m in (await api.get("/api/memories", headers=headers)).json() if containing in m["text"]]
            if found:
                return found
            await asyncio.sleep(0.3)


async def _memory_log(runtime: Runtime, memory_id: str) -> list[tuple[str, str | None]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event, new_memory FROM memory_history WHERE memory_id = :id ORDER BY recorded_at"),
            {"id": memory_id},
        )
        return [(r[0], r[1]) for r in rows]


async def test_memory_is_recalled_later_is_private_and_can_be_deleted(
    api: httpx.AsyncClient, make_account: MakeAccount, llm: FakeLLM, runtime: Runtime
) -> None:
    alice, bob = await make_account(), await make_account()
    # With a generative model configured, Mem0 extracts facts (infer=True) through it.
    llm.facts = ["The user's sister Ingrid lives in Trondheim."]
    await chat_turn(api, alice.headers, message="Please remember that my sister Ingrid lives in Trondheim.")
    memory = (await _memories(api, alice.headers, "Trondheim"))[0]
    assert memory["text"] == llm.facts[0] and llm.extractions
    llm.facts = []
    # Mem0's history and the messages it extracted from are in Postgres, shared by every host: no SQLite file.
    assert await _memory_log(runtime, memory["id"]) == [("ADD", memory["text"])]
    async with runtime.engine.connect() as conn:
        said = (await conn.execute(text("SELECT string_agg(content, ' ') FROM memory_messages"))).scalar_one()
    assert "Ingrid lives in Trondheim" in said
    assert not list(runtime.settings.data_dir.rglob("history.db"))

    # A later turn, in a new conversation, recalls it: the offline answerer lists it, the model gets it.
    events = await chat_turn(api, alice.headers, message="Which city does my sister live in?", providers=["extractive"])
    assert "Trondheim" in events[-1][1]["content"]
    await chat_turn(api, alice.headers, message="Which city does my sister live in?", providers=["openai"])
    assert "Ingrid lives in Trondheim" in str(llm.chat_requests[-1]["body"])

    # Bob's turns never see Alice's memories, not even in the prompt sent to the model.
    await chat_turn(api, bob.headers, message="Which city does my sister live in?", providers=["openai"])
    assert "Trondheim" not in str(llm.chat_requests[-1]["body"])
    assert all("Trondheim" not in m["text"] for m in (await api.get("/api/memories", headers=bob.headers)).json())
    assert (await api.delete(f"/api/memories/{memory['id']}", headers=bob.headers)).status_code == 404

    assert (await api.delete(f"/api/memories/{memory['id']}", headers=alice.headers)).status_code == 204
    assert all(m["id"] != memory["id"] for m in (await api.get("/api/memories", headers=alice.headers)).json())
    assert [event for event, _ in await _memory_log(runtime, memory["id"])] == ["ADD", "DELETE"]
    events = await chat_turn(api, alice.headers, message="Which city does my sister live in?", providers=["openai"])
    assert "Trondheim" not in str(llm.chat_requests[-1]["body"])


async def test_conversations_and_turns_are_private(
    api: httpx.AsyncClient, archive: Archive, make_account: MakeAccount
) -> None:
    events = await chat_turn(api, archive.headers, message="What was baked?")
    ids = events[0][1]
    stranger = await make_account()
    for method, path in [
        ("GET", f"/api/conversations/{ids['conversation_id']}/messages"),
        ("DELETE", f"/api/conversations/{ids['conversation_id']}"),
        ("GET", f"/api/chat/{ids['turn_id']}/events"),
    ]:
        assert (await api.request(method, path, headers=stranger.headers)).status_code == 404
    resp = await api.post(
        "/api/chat", json={"message": "hi", "conversation_id": ids["conversation_id"]}, headers=stranger.headers
    )
    assert resp.status_code == 404
    assert (await api.get("/api/conversations", headers=stranger.headers)).json() == []
    # Retrieval is scoped too: the stranger's offline answer finds nothing of the archive's clips.
    events = await chat_turn(api, stranger.headers, message="What was baked?")
    assert "nothing in your archive matches" in events[-1][1]["content"]
    assert events[-1][1]["citations"] == []

    assert (
        await api.delete(f"/api/conversations/{ids['conversation_id']}", headers=archive.headers)
    ).status_code == 204
    assert (await api.get(f"/api/chat/{ids['turn_id']}/events", headers=archive.headers)).status_code == 404


async def test_offline_memory_stores_what_the_user_said(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()
    await chat_turn(api, me.headers, message="I keep three beehives in my garden.")
    stored = await _memories(api, me.headers, "beehives")
    assert stored[0]["text"] == "I keep three beehives in my garden."  # infer=False: verbatim


async def test_a_whole_turn_through_gemini(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM, runtime: Runtime
) -> None:
    from pydantic import SecretStr

    # memory_infer off: Mem0's own Gemini client cannot be pointed at a loopback server.
    with overridden(
        runtime.settings, gemini_api_key=SecretStr("test-key"), gemini_base_url=llm.base, memory_infer=False
    ):
        events = await chat_turn(api, archive.headers, message="How many ships?", providers=["gemini"])
    final = events[-1][1]
    assert events[-1][0] == "final" and final["content"] == llm.answer and final["provider"] == "gemini"
    assert ":streamGenerateContent" in llm.chat_requests[-1]["path"]
    messages = (
        await api.get(f"/api/conversations/{events[0][1]['conversation_id']}/messages", headers=archive.headers)
    ).json()
    assert messages[-1]["prompt_tokens"] == 42 and messages[-1]["completion_tokens"] == 7


async def test_deleting_a_conversation_mid_turn_ends_the_turn_cleanly(
    api: httpx.AsyncClient, archive: Archive, llm: FakeLLM, temporal_client: Client
) -> None:
    llm.answer = " ".join(f"w{i}" for i in range(30))
    llm.chunk_delay_s = 0.1
    async with api.stream(
        "POST", "/api/chat", json={"message": "long answer please", "providers": ["openai"]}, headers=archive.headers
    ) as resp:
        first = await read_sse(resp, stop_after=2)
    ids = first[0][1]
    deleted = await api.delete(f"/api/conversations/{ids['conversation_id']}", headers=archive.headers)
    assert deleted.status_code == 204
    handle = temporal_client.get_workflow_handle(ids["workflow_id"])
    async with asyncio.timeout(60):
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()  # fails fast (non-retryable), not after a storm of retries
    assert "deleted" in str(failure.value.cause)
