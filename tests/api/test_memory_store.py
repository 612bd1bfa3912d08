"""Mem0 runs on Nexus's own embedder: building it loads no model of its own, and a process warms it at start; a
turn's memory is added once however often its activity runs."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sentence_transformers

from nexus.memory.service import MemoryStore
from nexus.runtime import Runtime
from tests.conftest import MakeAccount


async def test_mem0_loads_no_second_model_and_warm_up_builds_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runtime.warm_up()  # the embedder: loaded once per process
    loads: list[object] = []
    real = sentence_transformers.SentenceTransformer.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        loads.append(args)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", counting)
    store = MemoryStore(runtime.settings, runtime.database_url, runtime.embedder_for)
    assert not store._memories
    store.warm_up()
    assert len(store._memories) == 1
    assert loads == []  # Mem0's own HuggingFace embedder would have loaded the model a second time
    memory = next(iter(store._memories.values()))
    assert memory.embedding_model.embedder is runtime.embedder_for(store.active().spec)


async def test_a_retried_remember_adds_the_turns_memory_once(runtime: Runtime, make_account: MakeAccount) -> None:
    """Mem0 gives every add fresh ids: the chat turn's `remember` activity, retried after its worker died once
    Mem0 had stored the memory, added it a second time (duplicates then take the top recall slots)."""
    user = (await make_account()).user.id
    turn, other_turn = str(uuid.uuid4()), str(uuid.uuid4())
    text = "I keep my bicycle in the blue shed behind the bakery"
    assert await runtime.memory.add(user, text, {"conversation_id": "c", "turn_id": turn}) == 1
    assert await runtime.memory.add(user, text, {"conversation_id": "c", "turn_id": turn}) == 1  # the retry
    assert [m.text for m in await runtime.memory.list(user)] == [text]
    await runtime.memory.add(user, "My sister's name is Ingrid", {"conversation_id": "c", "turn_id": other_turn})
    assert len(await runtime.memory.list(user)) == 2  # another turn's memory is added as before


async def test_more_than_a_hundred_memories_can_be_listed(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    """The list stopped at 100: older memories could be neither seen nor forgotten (they were still recalled)."""
    account = await make_account()
    for i in range(3):
        await runtime.memory.add(account.user.id, f"fact number {i}", {"turn_id": str(uuid.uuid4())})
    few = await api.get("/api/memories", params={"limit": 2}, headers=account.headers)
    assert few.status_code == 200 and len(few.json()) == 2
    assert len((await api.get("/api/memories", params={"limit": 1000}, headers=account.headers)).json()) == 3
    too_many = await api.get("/api/memories", params={"limit": 1001}, headers=account.headers)
    assert too_many.status_code == 422 and "limit" in too_many.text
