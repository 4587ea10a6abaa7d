"""Waiting for a condition instead of sleeping: poll it until it holds, within a deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import httpx

POLL_INTERVAL = 0.01


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str = "condition",
    within: float = 10.0,
) -> None:
    """Check ``condition()`` (awaiting it if it is a coroutine) until it is true; fail naming
    ``what`` if it is not within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        assert time.monotonic() < deadline, f"{what}: not within {within:g} s"
        await asyncio.sleep(POLL_INTERVAL)


async def in_flight(client: httpx.AsyncClient) -> float:
    """``classifier_requests_in_flight`` as the service reports it now (all workers summed)."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("classifier_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("/metrics has no classifier_requests_in_flight sample")


async def until_in_flight(client: httpx.AsyncClient, count: int, within: float = 10.0) -> None:
    """Until the service counts ``count`` requests in progress (admitted, not yet answered)."""

    async def reached() -> bool:
        return await in_flight(client) == count

    await eventually(reached, f"{count} request(s) in flight", within)
