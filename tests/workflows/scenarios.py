"""The workflow runs whose histories are committed under tests/workflows/histories/ and replayed by test_replay.

`scripts/record_histories.py` runs each scenario against the time-skipping server with the mocked activities and
writes `histories/<name>.json`; the workflow id of each run is its scenario name. Re-record after an intended
change to a workflow's commands (and keep the old files where running workflows still need the old code path).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError

from tests.workflows.mocks import (
    ChatFakes,
    MediaFakes,
    RefreshFakes,
    bad_input,
    chat_input,
    media_input,
    running_workers,
    start_chat,
    start_media,
    start_token_refresh,
    unique_queues,
)

HISTORIES = Path(__file__).parent / "histories"


def history_json(history: WorkflowHistory) -> str:
    """A history as committed: without failures' stack traces (this machine's paths; replay never reads them)."""

    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {key: strip(value) for key, value in node.items() if key != "stackTrace"}
        if isinstance(node, list):
            return [strip(value) for value in node]
        return node

    return json.dumps(strip(json.loads(history.to_json())), indent=2) + "\n"


async def _media(client: Client, name: str, fakes: MediaFakes) -> WorkflowHandle:
    queues = unique_queues()
    async with running_workers(client, queues, fakes):
        handle = await start_media(client, media_input(queues), workflow_id=name)
        try:
            await handle.result()
        except Exception:  # the failed scenarios fail on purpose; the status below is what is checked
            pass
    return handle


async def _chat(client: Client, name: str, fakes: ChatFakes) -> WorkflowHandle:
    queues = unique_queues()
    async with running_workers(client, queues, fakes):
        handle = await start_chat(client, chat_input(queues), workflow_id=name)
        try:
            await handle.result()
        except Exception:
            pass
    return handle


async def media_happy(client: Client) -> WorkflowHandle:
    return await _media(client, "media_happy", MediaFakes())


async def media_duplicate(client: Client) -> WorkflowHandle:
    return await _media(client, "media_duplicate", MediaFakes(duplicate_of=uuid.UUID(int=7)))


async def media_failed(client: Client) -> WorkflowHandle:
    """Fails at enrichment (after fetch, fingerprint and transcription), so the history holds most commands."""
    revoked = ApplicationError("key revoked", type="ProviderError", non_retryable=True)
    return await _media(client, "media_failed", MediaFakes(script={"media.enrich": [revoked]}))


async def media_bad_input(client: Client) -> WorkflowHandle:
    return await _media(client, "media_bad_input", MediaFakes(script={"media.fetch": [bad_input()]}))


async def chat_happy(client: Client) -> WorkflowHandle:
    return await _chat(client, "chat_happy", ChatFakes())


async def chat_failed(client: Client) -> WorkflowHandle:
    revoked = ApplicationError("401 invalid api key", type="ProviderError", non_retryable=True)
    return await _chat(client, "chat_failed", ChatFakes(script={"chat.generate": [revoked]}))


async def token_refresh_revoked(client: Client) -> WorkflowHandle:
    """Half a day of 2-hour tokens: a refresh that fails for a passing reason and is retried, a `refresh_now`
    update, then the user revokes consent (needs_reauth ends the workflow)."""
    from datetime import timedelta

    busy = ApplicationError("503", type="ProviderUnavailable")
    fakes = RefreshFakes(script=[busy], stop_after=timedelta(hours=12))
    queues = unique_queues()
    async with running_workers(client, queues, fakes):
        handle = await start_token_refresh(client, queues, None, workflow_id="token_refresh_revoked")
        await handle.execute_update("refresh_now", result_type=str)
        await handle.result()
    return handle


async def token_refresh_disconnected(client: Client) -> WorkflowHandle:
    from datetime import UTC, datetime, timedelta

    fakes = RefreshFakes()
    queues = unique_queues()
    async with running_workers(client, queues, fakes):
        expires = datetime.now(UTC) + timedelta(days=3650)
        handle = await start_token_refresh(client, queues, expires, workflow_id="token_refresh_disconnected")
        await handle.signal("disconnect")
        await handle.result()
    return handle


@dataclass(frozen=True)
class Scenario:
    run: Callable[[Client], Awaitable[WorkflowHandle]]
    expected: WorkflowExecutionStatus


SCENARIOS: dict[str, Scenario] = {
    "media_happy": Scenario(media_happy, WorkflowExecutionStatus.COMPLETED),
    "media_duplicate": Scenario(media_duplicate, WorkflowExecutionStatus.COMPLETED),
    "media_failed": Scenario(media_failed, WorkflowExecutionStatus.FAILED),
    "media_bad_input": Scenario(media_bad_input, WorkflowExecutionStatus.FAILED),
    "chat_happy": Scenario(chat_happy, WorkflowExecutionStatus.COMPLETED),
    "chat_failed": Scenario(chat_failed, WorkflowExecutionStatus.FAILED),
    "token_refresh_revoked": Scenario(token_refresh_revoked, WorkflowExecutionStatus.COMPLETED),
    "token_refresh_disconnected": Scenario(token_refresh_disconnected, WorkflowExecutionStatus.COMPLETED),
}
