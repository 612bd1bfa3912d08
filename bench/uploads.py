"""Upload burst benchmark: many uploads at once, some of them identical, against a throwaway `nexus up` stack.

    python bench/uploads.py [--distinct 40] [--copies 100] [--pollers 5] [--timeout 1800]

Starts the whole stack on embedded defaults (Temporal dev server, Postgres, workers, one API process) on free
ports in a temp dir, creates a fresh user with an API key, makes DISTINCT short speech clips (espeak-ng, 3-6 s,
texts sharing at most one phrase; with seed 0 the fingerprint still marks one pair that shares "a box of paper
lanterns" a near-duplicate, which is reported) and one more clip that is uploaded COPIES times, then fires all
DISTINCT + COPIES uploads at once (multipart POST /api/media/upload). The client behaves well: on 429 or 503
it waits Retry-After (+ jitter) and tries again. Meanwhile POLLERS clients read GET /api/jobs/{id} of accepted
jobs in a loop, until every job is terminal. Prints: answers by status (429s,
5xx with their bodies, others), upload latency from the first attempt to 202 and of the accepted POST itself,
status read latency (while uploads arrive and while they are processed), how the copies and the distinct clips
ended, failures with their errors, and the wall time.

Goals (issue 10 item 15: 140 uploads gave 32 x 500, status reads waited up to 24 s, and four identical copies
were each fully processed): no 5xx, overload answered 429 + Retry-After at once, status reads p95 under 1 s,
and of the copies exactly one completed and every other one a duplicate of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from common import ROOT, start_stack
from pipeline import OBJECTS, SUBJECTS, VERBS, WHEN

TERMINAL = {"completed", "duplicate", "failed", "cancelled"}


def sentences(n: int, seed: int) -> list[str]:
    """n sentences, any two sharing at most one of their four phrases: espeak-ng says a phrase the same way
    every time, so sentences sharing most of their phrases could rightly fingerprint as near-duplicates."""
    rng = random.Random(seed)
    pools = [SUBJECTS, VERBS, OBJECTS, WHEN]
    chosen: list[tuple[int, ...]] = []
    for _ in range(200_000):
        cand = tuple(rng.randrange(len(p)) for p in pools)
        if all(sum(a == b for a, b in zip(cand, c, strict=True)) <= 1 for c in chosen):
            chosen.append(cand)
            if len(chosen) == n:
                break
    else:
        raise SystemExit(f"could not draw {n} sentences that differ enough; try fewer")
    return [" ".join(p[i] for p, i in zip(pools, c, strict=True)) + "." for c in chosen]


def make_clip(text: str, out: Path) -> Path:
    wav = out.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-b:a", "96k", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def duration(path: Path) -> float:
    probe = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    return float(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)


def fresh_api_key() -> str:
    """A new user and key through the CLI, against the embedded Postgres the stack is running."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
    cli = [sys.executable, "-m", "nexus.cli"]
    subprocess.run([*cli, "users", "create", "--email", email], check=True, capture_output=True, cwd=ROOT)
    out = subprocess.run(
        [*cli, "apikey", "create", "--email", email, "--name", "bench"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Upload:
    title: str
    kind: str  # "distinct" or "copy"
    data: bytes
    filename: str
    text: str = ""
    job_id: str | None = None
    media_id: str | None = None
    total_s: float | None = None  # first attempt -> 202
    accepted_s: float | None = None  # the POST that got the 202
    attempts: int = 0
    gave_up: str | None = None
    stage: str | None = None
    error: str | None = None
    terminal_at: float | None = None


@dataclass
class Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    shed_s: list[float] = field(default_factory=list)  # latency of the 429 answers
    retry_after: Counter[str] = field(default_factory=Counter)
    reads: list[tuple[str, float]] = field(default_factory=list)  # (phase, seconds)
    read_failures: Counter[str] = field(default_factory=Counter)


async def upload_one(client: httpx.AsyncClient, up: Upload, stats: Stats, ready: deque[Upload], jitter: float) -> None:
    first = time.perf_counter()
    transport_tries = 0
    while True:
        up.attempts += 1
        started = time.perf_counter()
        try:
            resp = await client.post(
                "/api/media/upload",
                files={"file": (up.filename, up.data, "audio/mpeg")},
                data={"source": "file", "title": up.title},
            )
        except httpx.HTTPError as exc:
            took = time.perf_counter() - started
            stats.transport_errors.append(f"{up.title} (attempt {up.attempts}, after {took:.2f} s): {exc!r}")
            transport_tries += 1
            if transport_tries > 5:
                up.gave_up = f"transport: {exc!r}"
                return
            await asyncio.sleep(1 + random.uniform(0, jitter))
            continue
        took = time.perf_counter() - started
        stats.statuses[resp.status_code] += 1
        if resp.status_code == 202:
            body = resp.json()
            up.job_id, up.media_id = body["job_id"], body["media_id"]
            up.accepted_s, up.total_s = took, time.perf_counter() - first
            ready.append(up)
            return
        retry_after = resp.headers.get("retry-after")
        if resp.status_code == 429:
            stats.shed_s.append(took)
            stats.retry_after[retry_after or "(none)"] += 1
        elif resp.status_code >= 500:
            stats.server_errors.append(f"{resp.status_code} Retry-After={retry_after}: {resp.text[:300]}")
        if resp.status_code in (429, 503) and retry_after and retry_after.isdigit():
            await asyncio.sleep(int(retry_after) + random.uniform(0, jitter))
            continue
        up.gave_up = f"HTTP {resp.status_code}: {resp.text[:300]}"
        return


async def poller(
    client: httpx.AsyncClient,
    pending: deque[Upload],
    stats: Stats,
    uploading: asyncio.Event,
    done: asyncio.Event,
    interval: float,
    t0: float,
) -> None:
    """Reads the status of accepted, unfinished jobs round robin; a job leaves the queue once terminal."""
    while not done.is_set():
        if not pending:
            await asyncio.sleep(0.05)
            continue
        up = pending.popleft()
        phase = "uploading" if uploading.is_set() else "processing"
        started = time.perf_counter()
        try:
            resp = await client.get(f"/api/jobs/{up.job_id}")
        except httpx.HTTPError as exc:
            stats.read_failures[type(exc).__name__] += 1
            pending.append(up)
            continue
        stats.reads.append((phase, time.perf_counter() - started))
        if resp.status_code != 200:
            stats.read_failures[f"HTTP {resp.status_code}: {resp.text[:200]}"] += 1
            pending.append(up)
        else:
            job = resp.json()
            up.stage, up.error = job["stage"], job["error"]
            if up.stage in TERMINAL:
                up.terminal_at = time.perf_counter() - t0
            else:
                pending.append(up)
        if interval:
            await asyncio.sleep(interval)


def spread(values: list[float], unit: str = "s") -> str:
    if not values:
        return "(none)"
    p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
    if unit == "ms":
        p50, p95, top = p50 * 1000, p95 * 1000, max(values) * 1000
        return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {top:7.1f} ms  (n={len(values)})"
    return f"p50 {p50:6.2f} s  p95 {p95:6.2f} s  max {max(values):6.2f} s  (n={len(values)})"


async def burst(base_url: str, token: str, uploads: list[Upload], args: argparse.Namespace) -> None:
    stats = Stats()
    accepted: deque[Upload] = deque()
    uploading, done = asyncio.Event(), asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120, limits=limits
    ) as client:
        uploading.set()
        t0 = time.perf_counter()
        pollers = [
            asyncio.create_task(poller(client, accepted, stats, uploading, done, args.poll_interval, t0))
            for _ in range(args.pollers)
        ]
        await asyncio.gather(*(upload_one(client, up, stats, accepted, args.jitter) for up in uploads))
        uploads_s = time.perf_counter() - t0
        uploading.clear()
        # Not `while accepted`: a job a poller is reading is out of the queue for that moment.
        while any(u.job_id and u.stage not in TERMINAL for u in uploads) and time.perf_counter() - t0 < args.timeout:
            await asyncio.sleep(0.5)
        done.set()
        await asyncio.gather(*pollers)
        wall_s = time.perf_counter() - t0
        last_terminal = max((u.terminal_at for u in uploads if u.terminal_at), default=0.0)

        # Final state of every item: what each duplicate points at, and whether a duplicate got a transcript.
        details: dict[str, dict] = {}
        sem = asyncio.Semaphore(8)

        async def detail(up: Upload) -> None:
            async with sem:
                resp = await client.get(f"/api/media/{up.media_id}")
                if resp.status_code == 200:
                    details[up.title] = resp.json()

        await asyncio.gather(*(detail(u) for u in uploads if u.media_id))

    report(uploads, stats, details, uploads_s, wall_s, last_terminal, args)


def report(
    uploads: list[Upload],
    stats: Stats,
    details: dict[str, dict],
    uploads_s: float,
    wall_s: float,
    last_terminal: float,
    args: argparse.Namespace,
) -> None:
    ok = [u for u in uploads if u.job_id]
    copies = [u for u in uploads if u.kind == "copy"]
    distinct = [u for u in uploads if u.kind == "distinct"]
    by_id = {d["id"]: title for title, d in details.items()}
    five = sum(n for s, n in stats.statuses.items() if s >= 500)
    other = {s: n for s, n in stats.statuses.items() if s not in (202, 429) and s < 500}
    ra = ", ".join(f"{k}: {v}" for k, v in sorted(stats.retry_after.items())) or "-"
    print(f"answers: {dict(sorted(stats.statuses.items()))}  attempts per upload: mean "
          f"{np.mean([u.attempts for u in uploads]):.1f}, max {max(u.attempts for u in uploads)}")  # fmt: skip
    print(f"  429 (shed): {stats.statuses[429]}, Retry-After {{{ra}}}, answered in {spread(stats.shed_s, 'ms')}")
    print(f"  5xx: {five}   other non-202: {other or 0}   transport errors: {len(stats.transport_errors)}")
    for body in Counter(stats.server_errors).most_common(5):
        print(f"    5xx x{body[1]}: {body[0]}")
    for err in stats.transport_errors[:5]:
        print(f"    transport: {err}")
    for up in [u for u in uploads if u.gave_up][:10]:
        print(f"    gave up: {up.title}: {up.gave_up}")
    print(f"upload, first attempt -> 202:   {spread([u.total_s for u in ok if u.total_s is not None])}")
    print(f"upload, the accepted POST:      {spread([u.accepted_s for u in ok if u.accepted_s is not None])}")
    reads = [s for _, s in stats.reads]
    print(f"GET /api/jobs/{{id}}, all:        {spread(reads, 'ms')}")
    for phase in ("uploading", "processing"):
        print(f"  while {phase:10}:           {spread([s for p, s in stats.reads if p == phase], 'ms')}")
    failures = dict(stats.read_failures)
    print(f"  non-200 / errors: {failures or 0}")

    def outcomes(group: list[Upload]) -> str:
        counted = Counter(u.stage or ("not accepted" if not u.job_id else "unfinished") for u in group)
        return ", ".join(f"{n} {stage}" for stage, n in counted.most_common())

    print(f"copies ({len(copies)}): {outcomes(copies)}   (goal: 1 completed, {len(copies) - 1} duplicate)")
    originals = [u.title for u in copies if u.stage == "completed"]
    dups = [details.get(u.title, {}) for u in copies if u.stage == "duplicate"]
    of_original = sum(1 for d in dups if by_id.get(d.get("duplicate_of")) in originals)
    transcribed = sum(1 for d in dups if d.get("segments"))
    print(f"  duplicates pointing at the completed copy: {of_original}/{len(dups)}; duplicates with a transcript: "
          f"{transcribed}")  # fmt: skip
    print(f"distinct ({len(distinct)}): {outcomes(distinct)}")
    texts = {u.title: u.text for u in distinct}
    for up in distinct:
        if up.stage == "duplicate":
            of = by_id.get(details.get(up.title, {}).get("duplicate_of"), "?")
            print(f"  marked duplicate: {up.title} {up.text!r} of {of} {texts.get(of, '')!r}")
    for up in uploads:
        if up.stage in ("failed", "cancelled") or (up.job_id and up.stage not in TERMINAL):
            print(f"  {up.title}: {up.stage}: {up.error}")
    unfinished = sum(1 for u in ok if u.stage not in TERMINAL)
    timed_out = f"  TIMED OUT after {args.timeout:.0f} s with {unfinished} unfinished" if unfinished else ""
    print(f"wall: all uploads answered in {uploads_s:.1f} s, all jobs terminal at {last_terminal:.1f} s "
          f"(polling ended at {wall_s:.1f} s){timed_out}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distinct", type=int, default=40, help="distinct clips, each uploaded once")
    parser.add_argument("--copies", type=int, default=100, help="uploads of one more clip")
    parser.add_argument("--pollers", type=int, default=5, help="concurrent GET /api/jobs/{id} readers")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="pause of each poller between reads (s)")
    parser.add_argument("--jitter", type=float, default=1.0, help="random extra wait on top of Retry-After (s)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up waiting for jobs after this (s)")
    parser.add_argument("--seed", type=int, default=0, help="which sentences are spoken")
    args = parser.parse_args()
    if args.distinct < 0 or args.copies < 1:
        parser.error("need --distinct >= 0 and --copies >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from nexus.core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        texts = sentences(args.distinct + 1, args.seed)
        uploads: list[Upload] = []
        lengths = []
        for i, text in enumerate(texts[: args.distinct]):
            clip = make_clip(text, Path(tmp) / f"distinct{i}.mp3")
            lengths.append(duration(clip))
            uploads.append(Upload(f"distinct-{i}", "distinct", clip.read_bytes(), clip.name, text))
        same = make_clip(texts[-1], Path(tmp) / "same.mp3")
        data = same.read_bytes()
        uploads += [Upload(f"copy-{k}", "copy", data, same.name) for k in range(args.copies)]
        random.Random(args.seed).shuffle(uploads)  # copies and distinct clips interleaved, as real traffic would be

        stack = start_stack(Path(tmp) / "var")
        try:
            settings = Settings()
            token = fresh_api_key()
            lo, hi = (min(lengths), max(lengths)) if lengths else (0, 0)
            same_s, kb = duration(same), len(data) // 1024
            print(
                f"clips: {args.distinct} distinct ({lo:.1f}-{hi:.1f} s) + 1 uploaded {args.copies} times "
                f"({same_s:.1f} s, {kb} KB); {len(uploads)} uploads fired at once"
            )
            s = settings
            print(
                f"stack: one API process, NEXUS_MAX_CONCURRENT_UPLOADS={s.max_concurrent_uploads}, "
                f"NEXUS_DB_POOL_SIZE={s.db_pool_size} (+{s.db_max_overflow} overflow, wait {s.db_pool_timeout_s:g} s), "
                f"{args.pollers} status pollers, {os.cpu_count()} CPUs"
            )
            asyncio.run(burst(f"http://{settings.api_host}:{settings.api_port}", token, uploads, args))
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(30)


if __name__ == "__main__":
    main()
