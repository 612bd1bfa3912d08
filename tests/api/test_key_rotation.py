"""`nexus keys rotate` while the stack runs: a new primary key, every sealed value re-wrapped, the old key kept
while Temporal's histories need it, and every token still opens, in the running process too (it re-reads the key
file when it meets a new key id)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

from sqlalchemy import delete, text
from sqlmodel import col

from models import Integration
from models.ops import WorkerRegistration
from nexus.core import crypto
from nexus.core.db import session_scope
from nexus.core.settings import Settings
from nexus.integrations.service import context, seal
from nexus.ops.keys import workers_behind
from nexus.runtime import Runtime
from tests.conftest import MakeAccount
from tests.harness import nexus_env


def cli(runtime: Runtime, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "keys", *args],
        env=nexus_env(runtime.settings, runtime.database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


async def test_rotation_rewraps_everything_and_the_old_key_stays_while_temporal_needs_it(
    runtime: Runtime, make_account: MakeAccount
) -> None:
    account = await make_account()
    rows = [Integration(owner_id=account.user.id, provider="spotify", account_id=f"acct-{i}") for i in range(3)]
    async with session_scope(runtime.engine) as session:
        for i, row in enumerate(rows):
            row.access_token = seal(row.id, "access_token", f"access-{i}")
            row.refresh_token = seal(row.id, "refresh_token", f"refresh-{i}")
            session.add(row)
    old = crypto.keyring().primary_id
    assert f"{old}  primary" in cli(runtime, "status")

    out = cli(runtime, "rotate")
    new = out.split("new primary key ")[1].split()[0]
    assert new != old and "unreadable" in out
    status = cli(runtime, "status")
    assert f"{new}  primary" in status and f"{old}  retired   0 values" in status
    # Temporal's histories (open runs, schedules) are still sealed with the old key: dropping it needs --force.
    refused = cli(runtime, "drop", old, code=1)
    assert "Temporal payloads" in refused and "--force" in refused
    assert old in cli(runtime, "status")

    # This process still holds the old keyring: it meets the new key id and re-reads the file.
    async with session_scope(runtime.engine) as session:
        for i, row in enumerate(rows):
            fresh = await session.get(Integration, row.id)
            assert fresh is not None and fresh.access_token is not None and fresh.refresh_token is not None
            assert fresh.access_token.key_id == new
            assert fresh.access_token.open(context(row.id, "access_token")) == f"access-{i}"
            assert fresh.refresh_token.open(context(row.id, "refresh_token")) == f"refresh-{i}"
        left = await session.execute(
            text("SELECT count(*) FROM integrations WHERE access_token LIKE :p"), {"p": f"nx1.{old}.%"}
        )
        assert left.scalar_one() == 0
    crypto.configure(runtime.settings)  # and a fresh start opens them all with the new primary
    assert crypto.keyring().primary_id == new
    async with session_scope(runtime.engine) as session:
        fresh = await session.get(Integration, rows[0].id)
        assert fresh is not None and fresh.access_token is not None
        assert fresh.access_token.open(context(rows[0].id, "access_token")) == "access-0"
    assert uuid.UUID(str(rows[0].id))


async def test_a_key_is_not_dropped_while_a_worker_still_runs_with_the_old_keyring(runtime: Runtime) -> None:
    """A worker that has not read the rotated key file (or was given the keys in its environment) still seals
    payloads with the old key: dropping it then made those runs unreadable."""
    retired = crypto.new_key_entry()
    keys = runtime.settings.secret_keys_file
    before = keys.read_text()
    keys.write_text(before.rstrip("\n") + "\n" + retired + "\n")  # a retired key no value uses
    kid = retired.split("=")[0]
    behind = WorkerRegistration(
        id=uuid.uuid4(),
        identity="4242@old-host",
        host="old-host",
        pid=4242,
        queues=["cpu"],
        fingerprint={"keyring": "0000000000000000", "queue_prefix": runtime.settings.task_queue_prefix},
    )
    async with session_scope(runtime.engine) as session:
        session.add(behind)
    try:
        refused = cli(runtime, "drop", kid, "--force", code=1)
        assert "4242@old-host (cpu)" in refused and "another keyring" in refused
        assert kid in keys.read_text()
        async with session_scope(runtime.engine) as session:  # it caught up (or was restarted)
            await session.execute(delete(WorkerRegistration).where(col(WorkerRegistration.id) == behind.id))
        # This process's own workers, if running, report the changed key file at their next beat (the CLI calls
        # above block this event loop, beats included): wait for that, as an operator would.
        ring = crypto.Keyring.from_file(keys)
        async with asyncio.timeout(30):
            while await workers_behind(runtime.engine, ring, Settings().worker_stale_after_s):  # the CLI's window
                await asyncio.sleep(0.2)
        assert f"removed {kid}" in cli(runtime, "drop", kid, "--force")
        assert kid not in keys.read_text()
    finally:
        async with session_scope(runtime.engine) as session:
            await session.execute(delete(WorkerRegistration).where(col(WorkerRegistration.id) == behind.id))
        keys.write_text(before)
