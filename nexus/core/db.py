"""Database engine and sessions (async SQLAlchemy over asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from nexus.core.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand) when none is configured."""
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url
    from nexus.core.embedded import EmbeddedPostgres

    return EmbeddedPostgres(settings.pg_dir).start()


@contextmanager
def database_url_for_command(settings: Settings) -> Iterator[str]:
    """For short CLI commands: the database URL, and if that meant starting the embedded server, stop it again
    afterwards (a server that was already running, e.g. under `nexus up`, is left alone)."""
    if settings.database_url:
        yield resolve_database_url(settings)
        return
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
