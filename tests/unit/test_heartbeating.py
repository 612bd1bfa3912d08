"""`activities.support.heartbeating`: heartbeats for the whole body, whatever it is doing (a silent conversion, a
slow first token), reports progress, and lets a cancellation in within about a second."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities import support
from activities.support import heartbeating


async def test_a_silent_body_still_heartbeats_and_reports_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "TICK_S", 0.05)
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    reported: list[float] = []

    async def report(fraction: float) -> None:
        reported.append(fraction)

    async def work() -> str:
        async with heartbeating(report) as beat:
            await asyncio.sleep(0.3)  # e.g. ffmpeg running in a thread: no progress of its own
            beat.progress(0.5)
            await asyncio.sleep(0.2)
        return "done"

    assert await env.run(work) == "done"
    assert len(beats) >= 5
    assert reported[0] == 0.0 and reported[-1] == 0.5 and reported == sorted(reported)


async def test_a_progress_report_that_fails_does_not_fail_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "TICK_S", 0.05)

    async def broken(_fraction: float) -> None:
        raise ConnectionError("database restarting")

    async def work() -> str:
        async with heartbeating(broken):
            await asyncio.sleep(0.2)
        return "done"

    assert await ActivityEnvironment().run(work) == "done"


async def test_a_progress_report_that_hangs_does_not_stop_the_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database whose sockets stall (a failover) hangs the progress write: the heartbeats go on, and the work
    ends within the final report's bound instead of waiting for the database."""
    monkeypatch.setattr(support, "TICK_S", 0.05)
    monkeypatch.setattr(support, "FINAL_REPORT_S", 0.2)
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    hung = asyncio.Event()

    async def stalled(_fraction: float) -> None:
        hung.set()
        await asyncio.Event().wait()

    async def work() -> str:
        async with heartbeating(stalled) as beat:
            await hung.wait()
            before = len(beats)
            await asyncio.sleep(0.5)
            assert len(beats) >= before + 5
            beat.progress(1.0)
        return "done"

    started = time.monotonic()
    assert await env.run(work) == "done"
    assert time.monotonic() - started < 2


async def test_cancellation_reaches_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "TICK_S", 0.05)
    env = ActivityEnvironment()

    async def work() -> None:
        async with heartbeating():
            await asyncio.sleep(60)

    started = time.monotonic()
    task = asyncio.create_task(env.run(work))
    await asyncio.sleep(0.2)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5
