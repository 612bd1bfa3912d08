"""`nexus doctor`: every check, machine-level and service-level, in one list."""

from __future__ import annotations

import asyncio

from nexus.core.settings import SHARED_SETTINGS, Settings
from nexus.ops.fleet import check_workers
from nexus.ops.service import (
    Check,
    check_binary,
    check_chromaprint,
    check_database,
    check_models,
    check_storage,
    check_temporal,
)


def check_mode(settings: Settings) -> Check:
    if missing := settings.missing_shared():
        return Check("mode", False, "distributed, but unset: " + "; ".join(SHARED_SETTINGS[m] for m in missing))
    if settings.mode == "distributed":
        return Check("mode", True, "distributed: database, storage, Temporal and keyring are shared settings")
    return Check("mode", True, "embedded: unset addresses start components on this machine (`nexus up`)")


async def run_doctor(settings: Settings) -> list[Check]:
    from nexus.core.db import database_url_for_command
    from nexus.core.temporal import connect
    from nexus.runtime import Runtime

    checks = [
        check_mode(settings),
        check_binary("ffmpeg", "apt-get install ffmpeg"),
        check_binary("ffprobe", "apt-get install ffmpeg"),
        check_chromaprint(),
        *check_models(settings),
    ]
    if settings.missing_shared():
        return checks  # every service check would fall back to a component of this host's own
    try:
        client = await asyncio.wait_for(connect(settings), 5)
    except Exception:
        client = None
    checks.append(await check_temporal(client, settings.temporal_target))
    try:
        with database_url_for_command(settings) as url:
            runtime = Runtime.build(settings.model_copy(update={"database_url": url}), client=client)
            try:
                checks.append(await check_database(runtime.engine))
                checks.append(await check_storage(runtime.store, settings.objects_url))
                # The workers this host's configuration would be served by, as the API's readiness sees them.
                checks.append(await check_workers(runtime, client))
            finally:
                await runtime.engine.dispose()
    except Exception as exc:
        checks.append(Check("database", False, f"{type(exc).__name__}: {exc}"))
    return checks
