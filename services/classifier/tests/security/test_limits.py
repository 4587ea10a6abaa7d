"""The per-key token bucket, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from classifier.core.errors import LimitExceededError
from classifier.security.limits import RateLimiter, default_burst
from tests.support.api_keys import ManualClock


def refused(limiter: RateLimiter, name: str, rps: float, burst: int | None = None) -> int:
    with pytest.raises(LimitExceededError) as caught:
        limiter.check(name, rps, burst)
    assert caught.value.status_code == 429
    assert caught.value.limit == "rps"
    assert caught.value.headers() == {"Retry-After": str(caught.value.retry_after)}
    return caught.value.retry_after


def test_a_burst_passes_then_the_next_request_is_refused_until_a_token_returns() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.check("lab", rps=3, burst=3)

    assert refused(limiter, "lab", 3, 3) == 1
    clock.advance(0.2)  # 0.6 of a token
    assert refused(limiter, "lab", 3, 3) == 1
    clock.advance(0.14)  # 1.02 tokens
    limiter.check("lab", rps=3, burst=3)
    assert refused(limiter, "lab", 3, 3) == 1


def test_retry_after_is_the_wait_for_one_token_rounded_up() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    limiter.check("batch", rps=0.1, burst=1)  # one request per 10 s

    assert refused(limiter, "batch", 0.1, 1) == 10
    clock.advance(7.5)
    assert refused(limiter, "batch", 0.1, 1) == 3
    clock.advance(2.5)
    limiter.check("batch", rps=0.1, burst=1)


def test_an_idle_key_refills_only_up_to_its_burst() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    limiter.check("lab", rps=2, burst=2)
    clock.advance(3600)

    limiter.check("lab", rps=2, burst=2)
    limiter.check("lab", rps=2, burst=2)
    refused(limiter, "lab", 2, 2)


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter(ManualClock())
    limiter.check("a", rps=1, burst=1)
    refused(limiter, "a", 1, 1)

    limiter.check("b", rps=1, burst=1)


def test_a_changed_limit_applies_to_the_existing_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    limiter.check("lab", rps=1, burst=1)
    refused(limiter, "lab", 1, 1)

    clock.advance(0.1)  # at 10/s that is a whole token
    limiter.check("lab", rps=10, burst=1)


def test_the_message_names_the_limit_and_that_it_is_per_process() -> None:
    limiter = RateLimiter(ManualClock())
    limiter.check("lab", rps=2.5, burst=1)

    with pytest.raises(LimitExceededError) as caught:
        limiter.check("lab", rps=2.5, burst=1)

    assert caught.value.detail == (
        "API key 'lab' is over its limit rps=2.5 (requests per second, burst 1, counted in each "
        "server process); retry after 1 s"
    )


@pytest.mark.parametrize(("rps", "burst"), [(0.1, 1), (1, 1), (2.5, 3), (100, 100)])
def test_the_default_burst_is_one_seconds_worth(rps: float, burst: int) -> None:
    assert default_burst(rps) == burst
