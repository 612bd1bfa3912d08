"""The orchestration contract: task-queue names, workflow names and ids, and search attributes.

One home for these facts. Domain services start workflows by name with the ids and attributes defined here;
workflows declare those names; workers serve those queues; the embedded server registers those attributes.
Free of side effects: it is imported inside the workflow sandbox too.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey


class Queue(enum.StrEnum):
    workflows = "workflows"  # orchestration only: kept apart so ffmpeg load never delays a workflow task
    cpu = "cpu"  # download, convert, fingerprint, embed, chat context
    gpu = "gpu"  # transcription (CPU fallback where no CUDA)
    llm = "llm"  # enrichment, chat generation


class TaskQueues(BaseModel):
    """Concrete queue names. Passed in workflow input so workflows never read settings."""

    workflows: str
    cpu: str
    gpu: str
    llm: str

    @classmethod
    def from_prefix(cls, prefix: str) -> TaskQueues:
        return cls(**{q.value: f"{prefix}-{q.value}" for q in Queue})

    def name(self, queue: Queue) -> str:
        return getattr(self, queue.value)


# --- workflow names and ids ----------------------------------------------------------------------------------

MEDIA_PIPELINE_WORKFLOW = "MediaPipeline"
CHAT_TURN_WORKFLOW = "ChatTurn"
RECONCILE_JOBS_WORKFLOW = "ReconcileJobs"
SWEEP_ORPHANS_WORKFLOW = "SweepOrphans"
TOKEN_REFRESH_WORKFLOW = "TokenRefresh"
TOKEN_REFRESH_SWEEP_WORKFLOW = "TokenRefreshSweep"
CLEANUP_WORKFLOW = "Cleanup"
REEMBED_WORKFLOW = "Reembed"
REEMBED_SWEEP_WORKFLOW = "ReembedSweep"


def schedule_id(task_queue_prefix: str, name: str) -> str:
    """One schedule of each kind per deployment (its queues' prefix): two stacks on one Temporal do not share."""
    return f"{task_queue_prefix}-{name}"


def reembed_workflow_id(task_queue_prefix: str, model_id: int) -> str:
    """One backfill per model per deployment: starting it again joins the running one."""
    return f"{task_queue_prefix}-reembed-{model_id}"


def media_workflow_id(media_id: object) -> str:
    return f"media-{media_id}"


def integration_workflow_id(integration_id: object) -> str:
    """One refresh workflow per integration: the id is the lock that makes it the only writer of its tokens."""
    return f"integration-{integration_id}"


def chat_turn_workflow_id(conversation_id: object, turn: int) -> str:
    return f"chat-{conversation_id}-{turn}"


# --- search attributes (registered on the embedded server at start, on external ones by `nexus migrate`) -----

SA_USER_ID = SearchAttributeKey.for_keyword("NexusUserId")
SA_MEDIA_ID = SearchAttributeKey.for_keyword("NexusMediaId")
SA_STAGE = SearchAttributeKey.for_keyword("NexusStage")
SA_INTEGRATION = SearchAttributeKey.for_keyword("NexusIntegration")  # the provider: google, spotify
SEARCH_ATTRIBUTES: list[SearchAttributeKey] = [SA_USER_ID, SA_MEDIA_ID, SA_STAGE, SA_INTEGRATION]
