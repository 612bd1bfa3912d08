"""What the re-embedding workflows and activities exchange: model ids, cursors and counts, never vectors or text."""

from __future__ import annotations

from pydantic import BaseModel, Field

from nexus.core.orchestration import TaskQueues


class ReembedInput(BaseModel):
    """A backfill of one `building` model; `after`/`embedded` carry progress across continue-as-new."""

    model_id: int
    queues: TaskQueues
    after: str | None = None  # the last chunk id embedded (chunks are walked in id order)
    embedded: int = 0
    batch_size: int = Field(default=1000, ge=1, le=5000)


class BatchInput(BaseModel):
    model_id: int
    after: str | None
    size: int


class BatchResult(BaseModel):
    embedded: int
    last: str | None  # cursor for the next batch
    finished: bool  # nothing left after the cursor


class FinishResult(BaseModel):
    switched: bool
    missing: int  # passages still without a vector (a writer raced the check): run the finish again
    active: str
    retired: str | None = None
    caught_up: int = 0  # passages embedded by the final catch-up
    memories: int = 0  # memories copied into the model's collection
    verified: int = 0  # sampled passages whose own text found them first in the new index


class ReembedReport(BaseModel):
    model_id: int
    embedded: int
    switched: bool
    active: str
    retired: str | None = None
    memories: int = 0


class SweepReport(BaseModel):
    started: list[int] = Field(default_factory=list, description="Building models whose backfill was (re)started.")
    active_backfilled: int = 0  # passages that had no vector of the active model
    memories_copied: int = 0  # memories of retired models' collections missing from the active one
    dropped: list[int] = Field(default_factory=list, description="Retired models whose vectors were dropped.")
