"""Histories of real runs (the whole stack, real activities) replay against the current workflow code.

The committed histories in tests/workflows/histories/real/ were recorded here from real runs; tests/workflows/
test_replay.py replays them on every `make test`, so a workflow change that would break runs recorded from real
workers fails CI, not production. This test also replays a fresh real run of each workflow. Re-record (for an
intended change, keeping the old files while old runs may still be open) with:

    NEXUS_RECORD_REAL_HISTORIES=1 .venv/bin/pytest tests/e2e/test_real_histories.py
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from temporalio.client import Client

from nexus.core.codec import decode_history
from tests.conftest import MakeAccount, chat_turn
from tests.e2e.test_media_pipeline import ingest_upload
from tests.workflows.scenarios import HISTORIES, history_json
from tests.workflows.test_replay import replayer

REAL = HISTORIES / "real"
RECORD = os.environ.get("NEXUS_RECORD_REAL_HISTORIES") == "1"


async def test_real_runs_replay_against_the_current_code(
    api: httpx.AsyncClient, make_account: MakeAccount, clips: dict[str, Path], temporal_client: Client
) -> None:
    account = await make_account()
    submitted, events = await ingest_upload(api, account.headers, clips["a_wav"])
    assert events[-1]["stage"] == "completed"
    turn = await chat_turn(api, account.headers, message="What does the recording say?")
    assert turn[-1][0] == "final", turn[-1]
    runs = {"media_completed": submitted["workflow_id"], "chat_answered": turn[0][1]["workflow_id"]}

    for name, workflow_id in runs.items():
        stored = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
        history = await decode_history(stored, temporal_client.data_converter.payload_codec)  # as committed: plain
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
        if RECORD:
            REAL.mkdir(exist_ok=True)
            (REAL / f"{name}.json").write_text(history_json(history))
