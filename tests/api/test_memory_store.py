"""Mem0 runs on Nexus's own embedder: building it loads no model of its own, and a process warms it at start."""

from __future__ import annotations

import pytest
import sentence_transformers

from nexus.memory.service import MemoryStore
from nexus.runtime import Runtime


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
