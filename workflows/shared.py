"""The orchestration contract: task-queue names, workflow ids, retry policies and search attributes.

Imported by workflows (inside the sandbox), workers and the API, so it stays free of side effects.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from pydantic import BaseModel
from temporalio.common import RetryPolicy, SearchAttributeKey


class Queue(enum.StrEnum):
    cpu = "cpu"  # download, convert, fingerprint, embed; also runs the workflows themselves
    gpu = "gpu"  # transcription (CPU fallback where no CUDA)
    llm = "llm"  # enrichment, chat generation


class TaskQueues(BaseModel):
    """Concrete queue names. Passed in workflow input so workflows never read settings."""

    cpu: str
    gpu: str
    llm: str

    @classmethod
    def from_prefix(cls, prefix: str) -> TaskQueues:
        return cls(**{q.value: f"{prefix}-{q.value}" for q in Queue})

    def name(self, queue: Queue) -> str:
        return getattr(self, queue.value)

    @property
    def workflows(self) -> str:
        return self.cpu


# --- workflow ids --------------------------------------------------------------------------------------------


def media_workflow_id(media_id: object) -> str:
    return f"media-{media_id}"


def chat_turn_workflow_id(conversation_id: object, turn: int) -> str:
    return f"chat-{conversation_id}-{turn}"


# --- search attributes (registered on the embedded server by nexus.embedded) -----------------------------------

SA_USER_ID = SearchAttributeKey.for_keyword("NexusUserId")
SA_MEDIA_ID = SearchAttributeKey.for_keyword("NexusMediaId")
SA_STAGE = SearchAttributeKey.for_keyword("NexusStage")


# --- retry policies ------------------------------------------------------------------------------------------

# Network-bound steps (download, object storage, provider calls): back off, give up after a few minutes.
NETWORK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=["BadInput"],
)

# Local compute (convert, fingerprint, transcribe, embed): a crash is worth a couple of retries, not ten.
COMPUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
    non_retryable_error_types=["BadInput"],
)

# LLM generation: 5xx/timeouts retry with backoff (the libraries' own retries are off, so every attempt is in
# history); 4xx/auth errors come back as non-retryable ApplicationErrors.
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["BadInput"],
)

# Bookkeeping writes to Postgres: cheap, retry patiently (the database may be restarting).
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=20,
)

# Error type name used for failures that retrying cannot fix (bad URL, not audio, too long...).
BAD_INPUT = "BadInput"
