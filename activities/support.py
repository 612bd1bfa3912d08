"""What every activity shares: heartbeats for its whole run, and one translation of domain errors to Temporal's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from nexus.llm.providers import ProviderError

TICK_S = 1.0
FINAL_REPORT_S = 5.0  # the last progress report's bound: the work is done, a hung database must not hold it
log = logging.getLogger("nexus.activities")


class Beat:
    """The latest progress fraction of a running activity; `progress` is a plain setter, safe from any thread."""

    def __init__(self, on_progress: Callable[[float], Awaitable[None]] | None) -> None:
        self.latest = 0.0
        self.reported = -1.0
        self.on_progress = on_progress

    def progress(self, fraction: float) -> None:
        self.latest = fraction

    async def report(self) -> None:
        if self.on_progress is None or self.latest == self.reported:
            return
        self.reported = self.latest
        try:
            await self.on_progress(self.reported)
        except Exception as exc:  # progress is a courtesy: a database hiccup must not fail the work
            log.warning("progress report failed: %s", exc)

    async def run(self) -> None:
        """Heartbeats never wait on the database: a progress write that hangs (a failover whose sockets stall)
        would otherwise stop them, and Temporal would time out and restart hours of transcription that was
        still running fine. Progress is reported from a loop of its own."""
        reporter = asyncio.create_task(self._report_loop())
        try:
            while True:
                activity.heartbeat(self.latest)
                await asyncio.sleep(TICK_S)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _report_loop(self) -> None:
        while True:
            await self.report()
            await asyncio.sleep(TICK_S)


@contextlib.asynccontextmanager
async def heartbeating(on_progress: Callable[[float], Awaitable[None]] | None = None) -> AsyncIterator[Beat]:
    """Heartbeat every second from a background task for the whole body, whatever it is doing (a download, an
    ffmpeg conversion, a storage copy, waiting for a model's first token), so only a dead worker trips the
    heartbeat timeout, and a cancellation reaches the activity within a second."""
    beat = Beat(on_progress)
    task = asyncio.create_task(beat.run())
    try:
        yield beat
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(beat.report(), FINAL_REPORT_S)


def provider_failure(exc: ProviderError) -> ApplicationError:
    """4xx/auth errors are not worth retrying; 5xx and timeouts are."""
    return ApplicationError(str(exc), type="ProviderError", non_retryable=not exc.retryable)
