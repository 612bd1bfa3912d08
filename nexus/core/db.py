"""Database engine and sessions (async SQLAlchemy over asyncpg)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from nexus.core.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand) when none is configured."""
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url
    settings.require_shared()
    from nexus.core.embedded import EmbeddedPostgres

    return EmbeddedPostgres(settings.pg_dir).start()


@contextmanager
def database_url_for_command(settings: Settings) -> Iterator[str]:
    """For short CLI commands: the database URL, and if that meant starting the embedded server, stop it again
    afterwards (a server that was already running, e.g. under `nexus up`, is left alone)."""
    if settings.database_url:
        yield resolve_database_url(settings)
        return
    settings.require_shared()
    from nexus.core.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.pg_dir)
    already_running = pg.is_running()
    url = pg.start()
    try:
        yield url
    finally:
        if not already_running:
            pg.stop()


def sync_url(async_url: str) -> str:
    """The same database for libraries that want a libpq URL (Mem0's pgvector store, psycopg)."""
    return async_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, pool_timeout_s: float = 30) -> AsyncEngine:
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout_s, pool_pre_ping=True
    )


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def lock_for_transaction(session: AsyncSession, key: str) -> None:
    """Serialize transactions that take the same `key` until the caller's transaction ends (a Postgres advisory
    lock: nothing to create or clean up, and it is released by commit or rollback, even on a crash)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


@asynccontextmanager
async def session_scope(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A unit of work: commits on success, rolls back on error, so no half-written rows remain."""
    async with session_maker(engine)() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# asyncpg's names for "the database is down, restarting, or refusing connections for now".
_UNAVAILABLE = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "TooManyConnectionsError",
    "AdminShutdownError",
    "ConnectionRefusedError",
}
log = logging.getLogger("nexus.core.db")
P = ParamSpec("P")
T = TypeVar("T")
OUTAGE_BUDGET_S = 600.0
"""How long a write after expensive work waits for the database to come back (a restart, a failover)."""


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `orig`, then causes and contexts), nearest first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return chain


def is_bad_value(exc: BaseException) -> bool:
    """A value the database cannot take (SQLSTATE class 22: too long for its column, a date or number out of
    range, text it cannot store) or asyncpg could not encode for it: the caller's input to fix, never an outage
    to wait out (asyncpg's client-side `DataError` is an `InterfaceError`, which otherwise reads as one)."""
    return any(type(e).__name__ == "DataError" or _is_data_exception(e) for e in causes(exc))


def _is_data_exception(e: BaseException) -> bool:
    sqlstate = getattr(e, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def is_unavailable(exc: BaseException) -> bool:
    """True for connection trouble worth waiting out, as opposed to a bad statement, a bad value or a constraint."""
    chain = causes(exc)
    if is_bad_value(exc):
        return False
    for e in chain:
        if type(e).__name__ in _UNAVAILABLE or isinstance(e, sa_exc.TimeoutError | ConnectionError):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(e, OSError) and not isinstance(e, sa_exc.SQLAlchemyError):  # socket gone, refused
            return True
    return False


def outlasting_outages(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Re-run a self-contained unit of work (its own transaction) while the database is unreachable, with
    backoff, for up to OUTAGE_BUDGET_S. For writes that store the result of expensive work (a transcript, an LLM
    answer): failing them would throw the work away and make the retry pay for it again."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + OUTAGE_BUDGET_S
        delay = 0.5
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: database unavailable (%s); retrying in %.1fs", fn.__name__, type(exc).__name__, delay)
                await backoff(delay)
                delay = min(delay * 2, 15.0)

    return wrapper


async def backoff(seconds: float) -> None:
    """The wait between attempts (tests replace this, never asyncio.sleep: every other task needs that one)."""
    await asyncio.sleep(seconds)
