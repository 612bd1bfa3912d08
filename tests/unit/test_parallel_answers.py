"""Parallel answers (`mode=parallel`): all of them, or the first failure with the other streams stopped."""

from __future__ import annotations

import asyncio

import pytest

from nexus.chat.generation import _all_or_none
from nexus.llm.providers import ProviderError


async def test_a_failing_provider_stops_the_others_streams() -> None:
    """With `gather` alone the slow provider went on streaming (and being paid for) after the attempt failed,
    its tokens landing in the retry's stream."""
    tokens: list[int] = []
    stopped = asyncio.Event()

    async def slow() -> str:
        try:
            for i in range(100):
                tokens.append(i)
                await asyncio.sleep(0.01)
            return "slow answer"
        except asyncio.CancelledError:
            stopped.set()
            raise

    async def failing() -> str:
        await asyncio.sleep(0.05)
        raise ProviderError("openai: 401 invalid key", retryable=False)

    with pytest.raises(ProviderError, match="invalid key"):
        await _all_or_none([slow(), failing()])
    assert stopped.is_set()  # cancelled before _all_or_none returned, not left running
    written = len(tokens)
    await asyncio.sleep(0.1)
    assert len(tokens) == written < 100


async def test_every_answer_in_order_when_all_succeed() -> None:
    async def answer(text: str, delay: float) -> str:
        await asyncio.sleep(delay)
        return text

    assert await _all_or_none([answer("a", 0.03), answer("b", 0.0)]) == ["a", "b"]
