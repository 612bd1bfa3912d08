"""Changing the embedding model on the live stack: the archive is re-embedded by `ReembedWorkflow` on the workers
while searches keep answering (the previous model's results until the switch, the new one's after, never an
error), memories come along, and switching back restores the session's model (only the gap is embedded)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from nexus.core.orchestration import reembed_workflow_id
from nexus.llm import registry
from nexus.llm.contracts import ReembedReport
from nexus.llm.models import STATIC_64
from nexus.ops import reembed
from nexus.runtime import Runtime
from tests.conftest import account_with_clips, chat_turn
from tests.harness import LiveServer


async def _switch(runtime: Runtime, client: Client, api: httpx.AsyncClient, headers: dict, spec: str) -> tuple:
    """Start the re-embedding to `spec` and search in a loop until its workflow ends: (report, models seen)."""
    model, started = await reembed.start(runtime, client, spec)
    assert started
    wid = reembed_workflow_id(runtime.settings.task_queue_prefix, model.id or 0)
    handle = client.get_workflow_handle(wid, result_type=ReembedReport)
    seen: list[str] = []
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        resp = await api.post("/api/search", json={"query": "what was baked in the morning"}, headers=headers)
        assert resp.status_code == 200, resp.text  # never an error, before, during or after the switch
        assert resp.json()["results"], resp.json()
        seen.append(resp.json()["model"])
        await asyncio.sleep(0.05)
    return await result, seen


def _changes(seen: list[str]) -> list[str]:
    """The models in the order searches saw them, each run of the same one counted once."""
    return [m for i, m in enumerate(seen) if i == 0 or m != seen[i - 1]]


@pytest.mark.timeout(240)
async def test_the_model_changes_under_live_searches_and_back(
    runtime: Runtime, live_api: LiveServer, clips: dict[str, Path], temporal_client: Client
) -> None:
    headers, _ = await account_with_clips(runtime, live_api.url, clips, ["a_wav", "b_wav"], "reembed")
    async with httpx.AsyncClient(base_url=live_api.url, timeout=60) as api:
        await chat_turn(api, headers, message="Remember that I keep bees.")
        for _ in range(100):  # the turn's memory is stored after its answer
            if any("bees" in m["text"] for m in (await api.get("/api/memories", headers=headers)).json()):
                break
            await asyncio.sleep(0.1)
        before = (await api.post("/api/search", json={"query": "baked"}, headers=headers)).json()["model"]
        assert before.startswith("all-MiniLM-L6-v2@")

        report, seen = await _switch(runtime, temporal_client, api, headers, STATIC_64)
        assert report.switched and report.active.startswith("tokenlearn-static-64@") and report.embedded > 0
        # Old model's results until the switch, the new one's after: one change, never back and forth.
        assert seen[0] == before
        assert _changes(seen) in ([before], [before, report.active])
        after = await api.post("/api/search", json={"query": "what was baked in the morning"}, headers=headers)
        assert after.json()["model"] == report.active and after.json()["results"]
        memories = (await api.get("/api/memories", headers=headers)).json()
        assert any("bees" in m["text"] for m in memories)  # copied into the new model's collection

        # Back to the session's model: its vectors were kept (grace period), so only the gap is embedded.
        back, seen_back = await _switch(runtime, temporal_client, api, headers, "")
        assert back.switched and back.active == before and back.embedded == 0
        assert _changes(seen_back) in ([report.active], [report.active, before])
        assert (await api.post("/api/search", json={"query": "baked"}, headers=headers)).json()["model"] == before
    # After the grace period the sweep drops the retired model's vectors (here: now, as if it had passed).
    later = datetime.now(UTC) + timedelta(hours=runtime.settings.embedding_grace_hours + 1)
    assert await registry.drop_expired(runtime.engine, later) == [report.model_id]
