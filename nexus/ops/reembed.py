"""Re-embedding the archive with another model, blue/green: the new model is `building` while its vectors are
backfilled beside the active model's (queries keep using the active one; new passages get both), then a verified
switch makes it active in one transaction, and the old vectors are dropped after a grace period.

    NEXUS_EMBEDDING_MODEL changes -> workflows worker starts (or `nexus reembed start`) -> registry.declare commits a
    `building` row and its empty vector table -> ReembedWorkflow: batches of passages without its vector, in id
    order, on the cpu queue (heartbeat = cursor; continue-as-new on large archives) -> finish: catch up, copy
    memories into its Mem0 collection, verify a sample (a passage's own text finds it first), switch -> the daily
    `reembed-sweep` restarts unfinished backfills, fills any gap of the active model, copies memories written to the
    old collection during the switch, and drops retired models after `NEXUS_EMBEDDING_GRACE_HOURS`.

The backfill starts only after the model's row commits (Dify once started it before, and re-embedded everything
with the old model), and each batch embeds with the model the row names, never with the worker's own setting.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import sqlalchemy as sa
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from models.ops import EmbeddingModel
from nexus.core.db import session_scope
from nexus.core.errors import BadInput
from nexus.core.orchestration import REEMBED_WORKFLOW, reembed_workflow_id
from nexus.core.temporal import RPC_TIMEOUT
from nexus.llm import registry
from nexus.llm.contracts import BatchResult, FinishResult, ReembedInput, SweepReport
from nexus.memory.service import IndexModel, copy_memories
from nexus.runtime import Runtime

log = logging.getLogger("nexus.ops")

VERIFY_SAMPLE = 20
CATCH_UP_BATCH = 512


async def start(rt: Runtime, client: Client, spec: str) -> tuple[EmbeddingModel, bool]:
    """Register the model `spec` names (committed first), and start its backfill when it needs one: (model,
    started). Idempotent: a backfill already running for it is joined, not duplicated."""
    model, needs_backfill = await registry.declare(rt.engine, spec)
    if needs_backfill:
        await start_backfill(rt, client, model.id or 0)
    return model, needs_backfill


async def start_backfill(rt: Runtime, client: Client, model_id: int) -> None:
    await client.start_workflow(
        REEMBED_WORKFLOW,
        ReembedInput(model_id=model_id, queues=rt.queues),
        id=reembed_workflow_id(rt.settings.task_queue_prefix, model_id),
        task_queue=rt.queues.workflows,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"re-embed the archive with model {model_id}",
        rpc_timeout=RPC_TIMEOUT,
    )


async def embed_batch(rt: Runtime, model_id: int, after: str | None, size: int) -> BatchResult:
    """Up to `size` passages after the cursor that have no vector of the model, embedded with it and stored."""
    model = await registry.get(rt.engine, model_id)
    if model is None or model.status not in (registry.BUILDING, registry.ACTIVE):
        return BatchResult(embedded=0, last=after, finished=True)  # switched back meanwhile, or dropped
    registry.check_loadable(model)
    async with session_scope(rt.engine) as session:
        rows = await registry.missing_chunks(session, model, after, size)
    if not rows:
        return BatchResult(embedded=0, last=after, finished=True)
    vectors = await asyncio.to_thread(rt.embedder_for(model.spec).embed, [text for _, _, text in rows])
    async with session_scope(rt.engine) as session:
        await registry.insert_vectors(session, model, [(chunk, media) for chunk, media, _ in rows], vectors)
    return BatchResult(embedded=len(rows), last=str(rows[-1][0]), finished=len(rows) < size)


async def catch_up(rt: Runtime, model_id: int) -> int:
    """Every passage still without a vector of the model (from the start: writers may have left gaps anywhere)."""
    total, after = 0, None
    while True:
        batch = await embed_batch(rt, model_id, after, CATCH_UP_BATCH)
        total, after = total + batch.embedded, batch.last
        if batch.finished:
            return total


async def verify(rt: Runtime, model: EmbeddingModel, sample: int = VERIFY_SAMPLE) -> int:
    """Sampled passages, embedded again with the model, must equal their stored vector (cosine distance ~0): proof
    that the table holds this model's vectors of these texts. Raises BadInput (no retry fixes it)."""
    table = registry.vector_table_name(model.id or 0)
    async with session_scope(rt.engine) as session:
        rows = (
            await session.execute(
                sa.text(
                    f"SELECT c.id, c.text FROM {table} v JOIN media_chunks c ON c.id = v.chunk_id "
                    "ORDER BY random() LIMIT :n"
                ),
                {"n": sample},
            )
        ).all()
    if not rows:
        return 0
    vectors = await asyncio.to_thread(rt.embedder_for(model.spec).embed, [r[1] for r in rows])
    async with session_scope(rt.engine) as session:
        for (chunk_id, text), vector in zip(rows, vectors, strict=True):
            distance = (
                await session.execute(
                    sa.text(f"SELECT embedding <=> CAST(:q AS vector) FROM {table} WHERE chunk_id = :c"),
                    {"q": str(list(map(float, vector))), "c": chunk_id},
                )
            ).scalar_one()
            if distance > 1e-3:
                raise BadInput(
                    f"verification failed: passage {chunk_id} ({text[:40]!r}) is {distance:.3f} from its own vector in "
                    f"{table}: the stored vectors are not {registry.label(model)}'s"
                )
    return len(rows)


async def finish(rt: Runtime, model_id: int) -> FinishResult:
    """Catch up, copy memories, verify, switch. Not switched (a writer left a gap in the instant before the lock):
    nothing changed, and the caller runs it again."""
    model = await registry.get(rt.engine, model_id)
    if model is None or model.status == registry.RETIRED:
        return FinishResult(switched=False, missing=0, active="(model no longer being built)")
    if model.status == registry.ACTIVE:
        return FinishResult(switched=True, missing=0, active=registry.label(model))
    caught_up = await catch_up(rt, model_id)
    await registry.build_index(rt.engine, model)  # after the load; writers go on meanwhile
    caught_up += await catch_up(rt, model_id)  # what they wrote during the build, if anything lacked a vector
    target = IndexModel(model.id or 0, model.dims, model.spec)
    async with session_scope(rt.engine) as session:
        previous = await registry.active_model(session)
    memories = await asyncio.to_thread(copy_memories, rt.memory, previous.id or 0, target)
    verified = await verify(rt, model)
    grace = timedelta(hours=rt.settings.embedding_grace_hours)
    outcome = await registry.switch(rt.engine, model_id, grace)
    if outcome.switched:  # memories a process wrote to the old collection in the moment of the switch
        memories += await asyncio.to_thread(copy_memories, rt.memory, previous.id or 0, target, only_missing=True)
        log.info("embedding model switched: %s is active, %s retired", outcome.active, outcome.retired)
    return FinishResult(
        switched=outcome.switched,
        missing=outcome.missing,
        active=outcome.active,
        retired=outcome.retired,
        caught_up=caught_up,
        memories=memories,
        verified=verified,
    )


async def sweep(rt: Runtime, client: Client) -> SweepReport:
    """The daily `reembed-sweep`: restart unfinished backfills, fill gaps of the active model, copy memories left in
    retired models' collections into the active one, drop retired models after their grace period."""
    report = SweepReport()
    async with session_scope(rt.engine) as session:
        models = list(await registry.targets(session))
        active = next(m for m in models if m.status == registry.ACTIVE)
        retired = (
            (
                await session.execute(
                    sa.select(EmbeddingModel).where(
                        EmbeddingModel.status == registry.RETIRED,  # type: ignore[arg-type]
                        EmbeddingModel.dropped_at.is_(None),  # type: ignore[union-attr]
                    )
                )
            )
            .scalars()
            .all()
        )
    for model in models:
        if model.status == registry.BUILDING:
            await start_backfill(rt, client, model.id or 0)
            report.started.append(model.id or 0)
    report.active_backfilled = await catch_up(rt, active.id or 0)
    target = IndexModel(active.id or 0, active.dims, active.spec)
    for old in retired:
        report.memories_copied += await asyncio.to_thread(
            copy_memories, rt.memory, old.id or 0, target, only_missing=True
        )
    report.dropped = await registry.drop_expired(rt.engine)
    return report
