"""Job ownership and the store-kept quotas, over an in-memory stand-in for the job store.

The stand-in implements only ``JobQuota`` (the interface the policy defines); the real job store
implements it in the jobs package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from classifier.core.errors import LimitExceededError
from classifier.security.auth import Principal
from classifier.security.keys import KeyLimits
from classifier.security.ownership import (
    RUNNING_JOBS_RETRY_AFTER_S,
    check_recording_submission,
    job_owner,
    listing_owner,
    may_access_job,
    seconds_to_next_utc_day,
)

NOW = datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)  # two hours before the next UTC day
GIB = 1 << 30


class StoreAwayError(Exception):
    pass


@dataclass
class InMemoryQuota:
    running: dict[str, int] = field(default_factory=dict)
    bytes_by_day: dict[tuple[str, date], int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    away: bool = False

    async def running_jobs(self, owner: str) -> int:
        self.calls.append(f"running_jobs({owner})")
        if self.away:
            raise StoreAwayError("database unreachable")
        return self.running.get(owner, 0)

    async def recording_bytes_on(self, owner: str, day: date) -> int:
        self.calls.append(f"recording_bytes_on({owner}, {day})")
        if self.away:
            raise StoreAwayError("database unreachable")
        return self.bytes_by_day.get((owner, day), 0)


def principal(name: str = "lab", *, admin: bool = False, **limits: int) -> Principal:
    return Principal(name=name, admin=admin, limits=KeyLimits(**limits))


def test_a_job_belongs_to_the_submitting_keys_name() -> None:
    assert job_owner(principal("lab")) == "lab"
    assert job_owner(None) is None


@pytest.mark.parametrize(
    ("caller", "owner", "allowed"),
    [
        (principal("lab"), "lab", True),
        (principal("lab"), "other", False),
        (principal("lab"), None, False),  # made while keys were off
        (principal("boss", admin=True), "lab", True),
        (principal("boss", admin=True), None, True),
        (None, "lab", True),  # keys off: everyone's
        (None, None, True),
    ],
)
def test_who_may_see_a_job(caller: Principal | None, owner: str | None, allowed: bool) -> None:
    assert may_access_job(caller, owner) is allowed


def test_a_listing_shows_own_jobs_and_an_admin_all() -> None:
    assert listing_owner(principal("lab")) == "lab"
    assert listing_owner(principal("boss", admin=True)) is None
    assert listing_owner(None) is None


async def test_without_limits_the_store_is_not_asked() -> None:
    quota = InMemoryQuota(away=True)

    assert await check_recording_submission(quota, principal(), 10 * GIB, now=NOW) is None
    assert await check_recording_submission(quota, None, 10 * GIB, now=NOW) is None
    assert quota.calls == []


async def test_running_jobs_under_the_limit_pass_and_at_it_are_refused() -> None:
    quota = InMemoryQuota(running={"lab": 1, "other": 2})
    caller = principal(max_running_jobs=2)

    assert await check_recording_submission(quota, caller, None, now=NOW) is None
    quota.running["lab"] = 2
    with pytest.raises(LimitExceededError) as caught:
        await check_recording_submission(quota, caller, None, now=NOW)

    assert caught.value.status_code == 429
    assert caught.value.limit == "max_running_jobs"
    assert caught.value.retry_after == RUNNING_JOBS_RETRY_AFTER_S
    assert caught.value.detail == (
        "API key 'lab' is at its limit max_running_jobs=2 (2 queued or running); "
        "retry when one ends"
    )
    assert quota.calls == ["running_jobs(lab)", "running_jobs(lab)"]


async def test_a_zero_running_jobs_limit_refuses_every_recording() -> None:
    with pytest.raises(LimitExceededError, match="max_running_jobs=0"):
        await check_recording_submission(InMemoryQuota(), principal(max_running_jobs=0), 1, now=NOW)


async def test_bytes_per_day_gives_the_allowance_left_for_the_streamer() -> None:
    quota = InMemoryQuota(bytes_by_day={("lab", date(2026, 12, 1)): 3 * GIB})
    caller = principal(recording_bytes_per_day=10 * GIB)

    assert await check_recording_submission(quota, caller, 2 * GIB, now=NOW) == 7 * GIB
    assert await check_recording_submission(quota, caller, None, now=NOW) == 7 * GIB
    assert await check_recording_submission(quota, caller, 7 * GIB, now=NOW) == 7 * GIB
    assert quota.calls[-1] == "recording_bytes_on(lab, 2026-12-01)"


async def test_an_upload_past_the_days_bytes_is_refused_until_midnight_utc() -> None:
    quota = InMemoryQuota(bytes_by_day={("lab", date(2026, 12, 1)): 9 * GIB})
    caller = principal(recording_bytes_per_day=10 * GIB)

    with pytest.raises(LimitExceededError) as caught:
        await check_recording_submission(quota, caller, GIB + 1, now=NOW)

    assert caught.value.limit == "recording_bytes_per_day"
    assert caught.value.retry_after == 2 * 3600
    assert caught.value.detail == (
        f"API key 'lab' is over its limit recording_bytes_per_day={10 * GIB} "
        f"({9 * GIB} B submitted today, UTC, this upload {GIB + 1} B); "
        "retry after 00:00 UTC, in 7200 s"
    )


async def test_a_spent_day_refuses_even_an_upload_of_unknown_size() -> None:
    quota = InMemoryQuota(bytes_by_day={("lab", date(2026, 12, 1)): 10 * GIB})

    with pytest.raises(LimitExceededError, match=r"\(10737418240 B submitted today, UTC\)"):
        await check_recording_submission(
            quota, principal(recording_bytes_per_day=10 * GIB), None, now=NOW
        )


async def test_yesterdays_bytes_do_not_count_today() -> None:
    quota = InMemoryQuota(bytes_by_day={("lab", date(2026, 11, 30)): 10 * GIB})
    tomorrow = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    caller = principal(recording_bytes_per_day=10 * GIB)

    with pytest.raises(LimitExceededError) as caught:
        await check_recording_submission(quota, caller, 1, now=tomorrow)
    assert caught.value.retry_after == 1
    assert await check_recording_submission(quota, caller, GIB, now=NOW) == 10 * GIB


async def test_an_admin_is_held_to_its_own_limits_too() -> None:
    quota = InMemoryQuota(running={"boss": 1})

    with pytest.raises(LimitExceededError):
        await check_recording_submission(
            quota, principal("boss", admin=True, max_running_jobs=1), None, now=NOW
        )


async def test_a_store_that_is_away_fails_the_submission_with_its_own_error() -> None:
    quota = InMemoryQuota(away=True)

    with pytest.raises(StoreAwayError):
        await check_recording_submission(quota, principal(max_running_jobs=3), 1, now=NOW)


@pytest.mark.parametrize(
    ("moment", "seconds"),
    [
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), 86400),
        (datetime(2026, 12, 1, 23, 59, 59, 500000, tzinfo=UTC), 1),
        (datetime(2026, 12, 31, 12, 0, 0, tzinfo=UTC), 43200),
    ],
)
def test_seconds_to_the_next_utc_day(moment: datetime, seconds: int) -> None:
    assert seconds_to_next_utc_day(moment) == seconds
