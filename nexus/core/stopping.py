"""Stopping blocking work when its activity is cancelled.

Cancelling an activity cancels its coroutine, but a thread running ffmpeg, yt-dlp or Whisper does not notice:
left alone it would transcribe to the end, or write into the storage prefix of an item just deleted. Blocking
work takes a `StopToken` and checks it between chunks (or kills its subprocess); `run_stoppable` sets the token
when the awaiting task is cancelled and waits for the thread to end before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The work was asked to stop (its activity was cancelled, or its item deleted)."""


class StopToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Stopped once stopping was asked for: call it between chunks of work."""
        if self._event.is_set():
            raise Stopped("stopped: the work was cancelled")


async def run_stoppable(fn: Callable[[StopToken], T]) -> T:
    """`asyncio.to_thread(fn, token)`, except that cancelling the caller stops the work and waits for it."""
    token = StopToken()
    future = asyncio.ensure_future(asyncio.to_thread(fn, token))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        token.stop()
        with contextlib.suppress(BaseException):
            await future
        raise
