"""Requests per second per key: a token bucket per key, in each server process.

Per process on purpose: a shared counter would cost a database round trip on every clip request,
more than the request itself. With W workers and R replicas a key may reach up to W x R times its
rate in total; docs/security.md says so and how to size the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from classifier.core.errors import LimitExceededError


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` per second; a request takes one."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there will be."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def default_burst(rps: float) -> int:
    """One second's worth of requests, and at least one."""
    return max(1, math.ceil(rps))


class RateLimiter:
    """One bucket per key name; ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, name: str, rps: float, burst: int | None = None) -> None:
        """Count one request of key ``name``; raises ``LimitExceededError`` over its rate."""
        size = burst or default_burst(rps)
        now = self.clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(rps, size, float(size), now)
        elif bucket.rate != rps or bucket.burst != size:  # the keys file changed its limits
            bucket.rate, bucket.burst = rps, size
        wait = bucket.take(now)
        if wait > 0.0:
            retry_after = math.ceil(wait)
            raise LimitExceededError(
                f"API key '{name}' is over its limit rps={rps:g} (requests per second, burst "
                f"{size}, counted in each server process); retry after {retry_after} s",
                limit="rps",
                retry_after=retry_after,
            )
