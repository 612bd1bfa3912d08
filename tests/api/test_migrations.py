"""Migrations run from an empty database, down to nothing, and up again."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from nexus.ops.migrate import alembic_config, upgrade_async

TABLES = {
    "users", "api_keys", "sessions", "audit_log", "workspaces", "workspace_members",
    "media_items", "media_jobs", "job_events", "transcript_segments", "media_chunks",
    "personas", "conversations", "messages", "chat_turns", "turn_events", "ws_tickets",
    "user_identities", "oauth_states", "integrations", "rate_limits", "vocabularies",
}  # fmt: skip


async def test_upgrade_downgrade_upgrade_on_an_empty_database(database_url: str) -> None:
    import asyncio

    from alembic import command

    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url.replace("/postgres?", f"/{name}?")
    engine = create_async_engine(url)

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return {r[0] for r in rows}

    try:
        await upgrade_async(url)
        assert TABLES <= await tables()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))).scalar() == 1
            indexes = {r[0] for r in await conn.execute(text("SELECT indexname FROM pg_indexes"))}
        assert {"ix_chunk_vectors_1_hnsw", "ix_media_chunks_tsv"} <= indexes

        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        assert (await tables()) <= {"alembic_version"}
        await upgrade_async(url)
        assert TABLES <= await tables()
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
