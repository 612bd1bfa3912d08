"""Replay the committed histories (tests/workflows/histories, written by scripts/record_histories.py) against the
current workflow code: a change that would break workflows already running in production fails here.

No server is needed: the Replayer feeds each recorded history to the workflow code and checks that the code
issues the same commands in the same order.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.media import MediaActivities
from models import MediaStatus
from nexus.core.orchestration import SA_MEDIA_ID, SA_USER_ID
from nexus.media.contracts import MediaPipelineInput, MediaRef, PipelineResult
from tests.workflows.mocks import WORKFLOWS
from tests.workflows.scenarios import HISTORIES, SCENARIOS
from workers.main import WORKFLOW_RUNNER
from workflows.media import MediaPipelineWorkflow
from workflows.shared import COMPUTE_RETRY, NETWORK_RETRY

HISTORY_FILES = sorted(HISTORIES.glob("*.json"))
REAL_HISTORY_FILES = sorted((HISTORIES / "real").glob("*.json"))  # from real runs: tests/e2e/test_real_histories.py


def load(path: Path) -> WorkflowHistory:
    """A recorded history; each scenario ran under its own name as workflow id."""
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(*workflows: type) -> Replayer:
    """A replayer configured as the workers are: pydantic payloads and the pass-through sandbox of workers/main.py."""
    return Replayer(
        workflows=list(workflows or WORKFLOWS), data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )


def test_every_scenario_has_a_recorded_history() -> None:
    """The replay tests below cover every scenario: none was added without recording its history, and no history
    lies around without a scenario that can re-record it."""
    assert sorted(p.stem for p in HISTORY_FILES) == sorted(SCENARIOS)


def test_real_histories_are_committed() -> None:
    assert {p.stem for p in REAL_HISTORY_FILES} >= {"media_completed", "chat_answered"}


@pytest.mark.parametrize("path", HISTORY_FILES + REAL_HISTORY_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    """The current MediaPipelineWorkflow and ChatTurnWorkflow reproduce the recorded run command for command:
    runs of mocked scenarios, and runs recorded from the real stack."""
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


@workflow.defn(name="MediaPipeline")
class MediaPipelineWithoutFingerprint(MediaPipelineWorkflow):
    """The pipeline as a careless edit might leave it: the fingerprint step dropped without a `workflow.patched`
    guard. Running workflows recorded with the step can no longer be replayed by it."""

    @workflow.run
    async def run(self, inp: MediaPipelineInput) -> PipelineResult:
        workflow.upsert_search_attributes(
            [SA_USER_ID.value_set(str(inp.user_id)), SA_MEDIA_ID.value_set(str(inp.media_id))]
        )
        ref = MediaRef(media_id=inp.media_id, job_id=inp.job_id)
        await self._enter(inp, MediaStatus.extracting)
        await workflow.execute_activity_method(
            MediaActivities.fetch_media,
            ref,
            task_queue=inp.queues.cpu,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=NETWORK_RETRY,
        )
        await self._enter(inp, MediaStatus.transcribing)
        await workflow.execute_activity_method(
            MediaActivities.transcribe_media,
            ref,
            task_queue=inp.queues.gpu,
            start_to_close_timeout=timedelta(hours=3),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=COMPUTE_RETRY,
        )
        await self._enter(inp, MediaStatus.completed)
        return PipelineResult(status=MediaStatus.completed)


async def test_replay_detects_a_changed_workflow() -> None:
    """Replay is not vacuous: the happy-path history, replayed against a pipeline without the fingerprint step,
    fails with a non-determinism error (the history schedules media.fingerprint where the code now schedules
    media.transcribe)."""
    with pytest.raises(workflow.NondeterminismError) as exc_info:
        await replayer(MediaPipelineWithoutFingerprint).replay_workflow(load(HISTORIES / "media_happy.json"))
    assert "media.fingerprint" in str(exc_info.value)
    assert "media.transcribe" in str(exc_info.value)
