"""`nexus doctor`: every check, machine-level and service-level, in one list."""

from __future__ import annotations

import asyncio

from nexus.core.settings import Settings
from nexus.ops.service import (
    Check,
    check_binary,
    check_chromaprint,
    check_database,
    check_models,
    check_storage,
    check_temporal,
)


async def run_doctor(settings: Settings) -> list[Check]:
    from nexus.core.db import database_url_for_command, make_engine
    from nexus.core.temporal import connect
    from nexus.storage.service import make_store

    checks = [
        check_binary("ffmpeg", "apt-get install ffmpeg"),
        check_binary("ffprobe", "apt-get install ffmpeg"),
        check_chromaprint(),
        *check_models(settings),
    ]
    try:
        client = await asyncio.wait_for(connect(settings), 5)
    except Exception:
        client = None
    checks.append(await check_temporal(client, settings.temporal_target))
    try:
        with database_url_for_command(settings) as url:
            engine = make_engine(url, pool_size=1)
            checks.append(await check_database(engine))
            await engine.dispose()
    except Exception as exc:
        checks.append(Check("database", False, f"{type(exc).__name__}: {exc}"))
    try:
        checks.append(await check_storage(make_store(settings), settings.objects_url))
    except Exception as exc:
        checks.append(Check("storage", False, str(exc)))
    return checks
