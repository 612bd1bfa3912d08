"""Chat turn activities: thin adapters over `nexus.chat.generation` (heartbeats, attempt number, error types)."""

from __future__ import annotations

from temporalio import activity

from activities.support import heartbeating, provider_failure
from nexus.chat import generation, service
from nexus.chat.contracts import ContextInput, FinishTurn, GenerateInput, GenerateResult, RememberInput, TurnContext
from nexus.llm.providers import ProviderError
from nexus.runtime import Runtime


class ChatActivities:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    @activity.defn(name="chat.context")
    async def context(self, inp: ContextInput) -> TurnContext:
        return await generation.context(self.rt, inp)

    @activity.defn(name="chat.remember")
    async def remember(self, inp: RememberInput) -> int:
        async with heartbeating():
            return await generation.remember(self.rt, inp)

    @activity.defn(name="chat.finish")
    async def finish(self, inp: FinishTurn) -> None:
        await generation.finish(self.rt, inp)

    @activity.defn(name="chat.reconcile")
    async def reconcile_turns(self) -> int:
        """Turns whose run ended without telling them (terminated in the UI, Postgres down at the end) end too."""
        async with heartbeating():
            return await service.reconcile_stale_turns(activity.client(), self.rt)

    @activity.defn(name="chat.generate")
    async def generate(self, inp: GenerateInput) -> GenerateResult:
        # Heartbeats flow from the start, so a slow first token (a cold local model, a long context) is not
        # mistaken for a dead worker.
        async with heartbeating():
            try:
                return await generation.generate(self.rt, inp, activity.info().attempt)
            except ProviderError as exc:
                raise provider_failure(exc) from exc
