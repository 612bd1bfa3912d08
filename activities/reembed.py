"""Re-embedding activities (cpu queue): a batch of the backfill, the verified switch, the daily sweep."""

from __future__ import annotations

from temporalio import activity

from activities.support import heartbeating
from nexus.llm.contracts import BatchInput, BatchResult, FinishResult, SweepReport
from nexus.ops import reembed
from nexus.runtime import Runtime


class ReembedActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    @activity.defn(name="reembed.batch")
    async def batch(self, inp: BatchInput) -> BatchResult:
        """Passages after the cursor without the model's vector: embedded with the model the registry names (not
        this worker's setting) and stored; a retry finds only what is still missing."""
        async with heartbeating():
            return await reembed.embed_batch(self.rt, inp.model_id, inp.after, inp.size)

    @activity.defn(name="reembed.finish")
    async def finish(self, model_id: int) -> FinishResult:
        async with heartbeating():
            return await reembed.finish(self.rt, model_id)

    @activity.defn(name="reembed.sweep")
    async def sweep(self) -> SweepReport:
        async with heartbeating():
            return await reembed.sweep(self.rt, await self.rt.temporal())
