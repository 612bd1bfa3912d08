"""Re-embedding benchmark: an archive re-embedded through the whole stack, against the same model embedding the same
texts directly in one process; and search latency during the backfill against idle.

    python bench/reembed.py [--chunks 100000] [--target static-64|minilm-copy|SPEC] [--batch 256] [--queries 200]
                            [--rate 5] [--direct-sample N]

Starts a throwaway `nexus up`, bulk-loads CHUNKS synthetic passages (bench/search.py's generator: 40 Zipf words
each, 384-d vectors of the active MiniLM model) for 10 users, then:

`minilm-copy` is the shipped MiniLM's files plus one more (another digest, so another model to the registry): a
compute-bound target, where `static-64` (tokenlearn's static model, ~20k passages/s) measures the pipeline's own
overhead.

- direct: the target model embeds every passage's text in one process, batches of BATCH (the baseline); with
  --direct-sample N only the first N passages in chunk id order (a random sample: ids are UUIDs), and the time
  for all of them is the load plus N's embedding time scaled to the whole (a compute-bound model's rate is flat,
  and 100k MiniLM passages take over half an hour here);
- stack: `nexus reembed start` (in-process: registry.declare + ReembedWorkflow) on the stack's workers, from start
  to the switch (backfill, catch-up, memories, verification, switch) -> chunks/s and the ratio to direct
  (goal >= 0.85x);
- search: QUERIES hybrid searches by one user (query text embedded with the active model, as the API does) while
  idle, then RATE per second while the backfill runs -> p50/p95 and the ratio of p95s (goal <= 2x). The searches
  take CPU from the backfill on a small machine: `--rate 0` measures the throughput on a quiet stack.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from common import start_stack
from search import load, pct


async def searches(  # type: ignore[no-untyped-def]
    rt, reader, texts: list[str], stop: asyncio.Event | None, limit: int, pause_s: float = 0.0
) -> list[float]:
    from nexus.core.db import session_scope
    from nexus.search.service import SearchMode, search

    timings: list[float] = []
    i = 0
    while (stop is None and i < limit) or (stop is not None and not stop.is_set()):
        query = texts[i % len(texts)]
        started = time.perf_counter()
        async with session_scope(rt.engine) as session:
            await search(session, rt.embedder_for, reader, query, limit=10, mode=SearchMode.hybrid)
        timings.append((time.perf_counter() - started) * 1000)
        i += 1
        await asyncio.sleep(pause_s)
    return timings


async def activity_time(client, workflow_id: str) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Seconds each activity spent running (started -> completed) by type, over every run of the workflow: a
    large backfill continues-as-new, and its last run holds only the last batches."""
    runs = [r async for r in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    spent: dict[str, list[float]] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        for name, took in (await run_activity_time(client.get_workflow_handle(workflow_id, run_id=run.run_id))).items():
            spent.setdefault(name, []).extend(took)
    return spent


async def run_activity_time(handle) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    from temporalio.api.enums.v1 import EventType

    spent: dict[str, list[float]] = {}
    scheduled, started = {}, {}
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[e.event_id] = e.event_time.ToDatetime()
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = e.activity_task_completed_event_attributes
            name = scheduled[done.scheduled_event_id]
            took = e.event_time.ToDatetime() - started[done.started_event_id]
            spent.setdefault(name, []).append(took.total_seconds())
    return spent


def minilm_copy(root: Path) -> str:
    from nexus.llm.models import spec_path

    copy = root / "all-MiniLM-L6-v2-copy"
    copy.mkdir()
    for item in spec_path("").iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "copy.txt").write_text("the same weights under another digest\n")
    return str(copy)


async def main(chunks: int, target: str, batch: int, queries: int, rate: float, sample: int) -> None:
    from nexus.core.db import session_scope
    from nexus.core.embedded import EmbeddedPostgres
    from nexus.core.orchestration import REEMBED_WORKFLOW, reembed_workflow_id
    from nexus.core.settings import Settings
    from nexus.core.temporal import connect
    from nexus.llm import registry
    from nexus.llm.contracts import ReembedInput, ReembedReport
    from nexus.llm.embeddings import Embedder
    from nexus.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        if target == "minilm-copy":
            target = minilm_copy(Path(tmp))
        stack = start_stack(Path(tmp))
        try:
            settings = Settings()
            url = EmbeddedPostgres(settings.pg_dir).start()
            data = await load(url, users=10, per_user=chunks // 10, items=10, rng=np.random.default_rng(1))
            rt = Runtime.build(settings.model_copy(update={"database_url": url}))
            client = await connect(settings)

            # The same batches as the backfill's: passages in chunk id order (a batch's mix of lengths sets its
            # padding, and so its cost: another order of the same texts differs by up to ~10 %).
            async with session_scope(rt.engine) as session:
                in_order = list((await session.execute(sa.text("SELECT text FROM media_chunks ORDER BY id"))).scalars())
            # Timed from a cold model, as the worker's first batch is (the stack's workers have not loaded it).
            started = time.perf_counter()
            embedder = Embedder(target)
            embedder.embed(in_order[:1])
            load_s = time.perf_counter() - started
            sampled = in_order[: sample or len(in_order)]
            for i in range(0, len(sampled), batch):
                embedder.embed(sampled[i : i + batch])
            direct_s = load_s + (time.perf_counter() - started - load_s) * len(in_order) / len(sampled)

            words = [" ".join(t.split()[5:8]) for t in data.texts[:queries]]
            reader = data.owners[0]
            await searches(rt, reader, words, None, 10)  # warm up (query model, connections)
            idle = await searches(rt, reader, words, None, queries)

            # As `nexus reembed start`, with this run's batch size: the row commits, then the workflow starts.
            registered, needs = await registry.declare(rt.engine, target)
            assert needs, "the target model is already active"
            stop = asyncio.Event()
            started = time.perf_counter()
            await client.start_workflow(
                REEMBED_WORKFLOW,
                ReembedInput(model_id=registered.id or 0, queues=rt.queues, batch_size=batch),
                id=reembed_workflow_id(settings.task_queue_prefix, registered.id or 0),
                task_queue=rt.queues.workflows,
            )
            # Searches at a steady rate during the backfill (a loop flat out would take a core from it on 2 cores).
            loop = asyncio.ensure_future(searches(rt, reader, words, stop, 0, pause_s=1 / rate)) if rate else None
            handle = client.get_workflow_handle(
                reembed_workflow_id(settings.task_queue_prefix, registered.id or 0), result_type=ReembedReport
            )
            report = await handle.result()
            stack_s = time.perf_counter() - started
            stop.set()
            during = await loop if loop else []
            spent = await activity_time(client, handle.id)
        finally:
            stack.terminate()
            stack.wait(60)

    n = len(data.texts)
    print(f"re-embedding {n} passages to {target} (batches of {batch}); switched: {report.switched}")
    scaled = f", scaled from the first {sample:,}" if sample and sample < n else ""
    print(
        f"direct, one process: {n / direct_s:,.0f} passages/s ({direct_s:.1f} s, of which {load_s:.1f} s loading"
        f"{scaled})"
    )
    print(f"through the stack:   {n / stack_s:,.0f} passages/s ({stack_s:.1f} s)  ratio {direct_s / stack_s:.2f}x")
    # Fixed costs (model load, workflow start, index build, memories, verification) weigh on a short run; the
    # steady state (a median batch against the direct rate) and the fixed seconds project a larger archive.
    batches = spent.get("reembed.batch", [])
    if len(batches) >= 3:
        direct_per, stack_per = (direct_s - load_s) / n, statistics.median(batches) / batch
        fixed = stack_s - n * stack_per
        steady = direct_per / stack_per
        print(f"steady state: {1 / stack_per:,.0f} passages/s, ratio {steady:.2f}x; fixed costs {fixed:.1f} s")
        big = 100_000
        projected = (load_s + big * direct_per) / (fixed + big * stack_per)
        print(f"projected for {big:,} passages: ratio {projected:.2f}x")
    for name, took in spent.items():
        print(
            f"{name}: {len(took)} x, {sum(took):.1f} s in all, first {took[0]:.2f} s, "
            f"median {statistics.median(took):.2f} s"
        )
    print(f"search idle:   p50 {statistics.median(idle):.1f} ms  p95 {pct(idle, 95):.1f} ms  ({len(idle)} queries)")
    if during:
        print(
            f"search during: p50 {statistics.median(during):.1f} ms  p95 {pct(during, 95):.1f} ms  "
            f"({len(during)} queries, {rate}/s)"
        )
        print(f"p95 during / idle: {pct(during, 95) / pct(idle, 95):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--target", default="static-64")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="searches per second during the backfill (0: none)")
    parser.add_argument("--direct-sample", type=int, default=0, help="time the direct baseline on N passages")
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.target, args.batch, args.queries, args.rate, args.direct_sample))
