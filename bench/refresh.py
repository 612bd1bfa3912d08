"""Token-refresh herd benchmark: many integrations whose tokens expire within the same window, on a throwaway
`nexus up` stack against the loopback OAuth provider (tests/oauth_provider.py, Authlib's server components).

    python bench/refresh.py [--integrations 1000] [--window 600] [--margin 20] [--jitter 10]

Starts the provider and the whole stack on embedded defaults (Spotify's endpoints pointed at the provider),
obtains INTEGRATIONS real token pairs from the provider (authorization code + PKCE), stores them as
integrations whose access tokens expire at random moments within WINDOW seconds (starting 30 s from now), and
starts their TokenRefresh workflows. Then waits until every one was refreshed, and prints:

- how many were refreshed before their token expired (the goal: all), and the slack left (expiry - refresh);
- lag behind the planned refresh time, p50/p95/max: from the moment the workflow's timer was due (from each
  run's history) to the refresh activity starting;
- peak concurrent refreshes seen by the provider (bounded by the workflows worker's activity slots,
  NEXUS_WORKFLOWS_CONCURRENCY, 16 by default: refresh activities run on the workflows queue);
- the workflows worker's memory (RSS) before the workflows started and after every refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import secrets
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import psutil
from common import ROOT, start_stack

sys.path.insert(0, str(ROOT))

from tests.oauth_provider import OAuthProvider


async def token_pairs(provider: OAuthProvider, n: int) -> list[dict]:
    """n real token pairs: authorize (auto-approved) with PKCE, then exchange the code."""
    sem = asyncio.Semaphore(32)
    redirect = "http://127.0.0.1:1/callback"

    async def one(http: httpx.AsyncClient, i: int) -> dict:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        async with sem:
            provider.user = {"id": f"bench-{i}", "email": f"bench-{i}@example.com"}
            resp = await http.get(
                provider.authorize_url,
                params={
                    "response_type": "code",
                    "client_id": provider.client_id,
                    "redirect_uri": redirect,
                    "scope": "user-read-email",
                    "state": "s",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
            code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
            token = await http.post(
                provider.token_url,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect,
                    "code_verifier": verifier,
                },
                auth=(provider.client_id, provider.client_secret),
            )
            token.raise_for_status()
            return token.json() | {"account": f"bench-{i}"}

    async with httpx.AsyncClient(timeout=60) as http:
        return await asyncio.gather(*(one(http, i) for i in range(n)))


def workflows_worker(stack: psutil.Process) -> psutil.Process:
    for child in stack.children(recursive=True):
        cmd = " ".join(child.cmdline())
        if "worker" in cmd and "workflows" in cmd:
            return child
    raise SystemExit("no workflows worker found under the stack")


async def lag_of(client, workflow_id: str) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds from the last timer's due time to the refresh activity's start, from the run's history."""
    due = None
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("timer_started_event_attributes"):
            fire = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            due = event.event_time.ToDatetime() + fire
        if event.HasField("activity_task_started_event_attributes") and due is not None:
            return (event.event_time.ToDatetime() - due).total_seconds()
    return None


async def run(args: argparse.Namespace) -> None:
    provider = OAuthProvider(access_token_ttl=3600).start()
    os.environ.update(
        NEXUS_SPOTIFY_CLIENT_ID=provider.client_id,
        NEXUS_SPOTIFY_CLIENT_SECRET=provider.client_secret,
        NEXUS_SPOTIFY_AUTHORIZE_URL=provider.authorize_url,
        NEXUS_SPOTIFY_TOKEN_URL=provider.token_url,
        NEXUS_SPOTIFY_API_URL=provider.url,
        NEXUS_REFRESH_MARGIN_S=str(args.margin),
        NEXUS_REFRESH_JITTER_S=str(args.jitter),
    )
    data_dir = Path(tempfile.mkdtemp(prefix="nexus-bench-refresh-"))
    print(f"starting the stack in {data_dir} ...", flush=True)
    stack = start_stack(data_dir)
    try:
        from sqlalchemy import select
        from sqlmodel import col

        from models import Integration, User
        from nexus.core.db import session_scope
        from nexus.core.settings import Settings
        from nexus.core.temporal import connect
        from nexus.identity.service import create_user
        from nexus.integrations.service import seal, start_refresh_workflow
        from nexus.runtime import Runtime

        settings = Settings()
        client = await connect(settings)
        runtime = Runtime.build(settings, client=client)
        worker = workflows_worker(psutil.Process(stack.pid))

        started = time.monotonic()
        pairs = await token_pairs(provider, args.integrations)
        print(f"{len(pairs)} token pairs from the provider in {time.monotonic() - started:.1f} s", flush=True)

        now = datetime.now(UTC)
        rng = random.Random(0)
        expiry: dict[uuid.UUID, datetime] = {}
        rows: list[Integration] = []
        async with session_scope(runtime.engine) as session:
            user: User = await create_user(session, f"bench-{uuid.uuid4().hex[:8]}@example.test")
            for pair in pairs:
                row = Integration(owner_id=user.id, provider="spotify", account_id=pair["account"])
                row.access_token = seal(row.id, "access_token", pair["access_token"])
                row.refresh_token = seal(row.id, "refresh_token", pair["refresh_token"])
                row.access_token_expires_at = now + timedelta(seconds=30 + rng.uniform(0, args.window))
                row.last_refreshed_at = now
                expiry[row.id] = row.access_token_expires_at
                rows.append(row)
                session.add(row)
        rss_before = worker.memory_info().rss
        provider.token_requests.clear()
        provider.max_concurrent_token_requests = 0
        t0 = time.monotonic()
        sem = asyncio.Semaphore(50)

        async def start(row: Integration) -> None:
            async with sem:
                await start_refresh_workflow(client, runtime, row, replace=True)

        await asyncio.gather(*(start(r) for r in rows))
        print(f"started {len(rows)} workflows in {time.monotonic() - t0:.1f} s; waiting ...", flush=True)

        deadline = time.monotonic() + args.window + 300
        done: dict[uuid.UUID, datetime] = {}
        while time.monotonic() < deadline and len(done) < len(rows):
            await asyncio.sleep(5)
            async with session_scope(runtime.engine) as session:
                found = await session.execute(
                    select(col(Integration.id), col(Integration.last_refreshed_at), col(Integration.version)).where(
                        col(Integration.owner_id) == user.id
                    )
                )
                for iid, refreshed_at, version in found:
                    if version > 1 and iid not in done:
                        done[iid] = refreshed_at
            print(f"  {len(done)}/{len(rows)} refreshed", flush=True)
        rss_after = worker.memory_info().rss

        in_time = sum(1 for iid, at in done.items() if at < expiry[iid])
        slack = np.array([(expiry[iid] - at).total_seconds() for iid, at in done.items()])
        lags = [
            lag
            for lag in await asyncio.gather(*(lag_of(client, f"integration-{r.id}") for r in rows[: args.lag_sample]))
            if lag is not None
        ]
        failed = [r for r in provider.token_requests if r["status"] != 200]
        print()
        print(f"integrations                 {len(rows)} (tokens expiring within {args.window:.0f} s)")
        print(f"refreshed before expiry      {in_time}/{len(rows)}  (refreshed at all: {len(done)})")
        print(f"slack before expiry (s)      min {slack.min():.1f}  p50 {np.percentile(slack, 50):.1f}  "
              f"max {slack.max():.1f}  (margin {args.margin:.0f} + jitter up to {args.jitter:.0f})")  # fmt: skip
        print(f"lag behind plan (s, {len(lags)} runs)  p50 {np.percentile(lags, 50):.2f}  "
              f"p95 {np.percentile(lags, 95):.2f}  max {max(lags):.2f}")  # fmt: skip
        print(f"peak concurrent refreshes    {provider.max_concurrent_token_requests} (workflows worker slots: "
              f"{settings.workflows_concurrency})")  # fmt: skip
        print(f"failed token requests        {len(failed)}")
        print(f"workflows worker RSS (MB)    before {rss_before / 1e6:.0f}  after {rss_after / 1e6:.0f}")
        await runtime.close()
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(60)
        except Exception:
            stack.kill()
        provider.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--integrations", type=int, default=1000)
    parser.add_argument("--window", type=float, default=600, help="seconds within which all tokens expire")
    parser.add_argument("--margin", type=float, default=20, help="NEXUS_REFRESH_MARGIN_S")
    parser.add_argument("--jitter", type=float, default=10, help="NEXUS_REFRESH_JITTER_S")
    parser.add_argument("--lag-sample", type=int, default=1000, help="runs whose history is read for the lag")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
