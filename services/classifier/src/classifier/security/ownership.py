"""Whose jobs are whose, and the per-key limits kept in the job store: the policy, as functions
over one small interface (``JobQuota``) that the job store implements.

Jobs belong to the name of the key that submitted them (rotating a key keeps its name, so its
jobs); another key is answered as if the job did not exist (404), an admin key sees every job.
With keys off there is no principal: every job is everyone's. Jobs made while keys were off have
no owner, and only admin keys see them once keys are on.

Only recording submissions consult the store. Clip requests (``/v1 classify``, ``/predict``,
``/v2 infer``) never do: their only per-key limit is the in-process rate (``limits``), so a job
store that is away cannot refuse them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from classifier.core.errors import LimitExceededError
from classifier.security.auth import Principal

#: A job takes minutes; a client told to come back sooner would only be refused again.
RUNNING_JOBS_RETRY_AFTER_S = 30


class JobQuota(Protocol):
    """What the policy asks of the job store (shared by every process and replica)."""

    async def running_jobs(self, owner: str) -> int:
        """How many of ``owner``'s jobs are queued or running now."""
        ...

    async def recording_bytes_on(self, owner: str, day: date) -> int:
        """Recording bytes ``owner`` submitted on UTC ``day``, counting jobs since deleted (so
        deleting a job does not give its bytes back)."""
        ...


def job_owner(principal: Principal | None) -> str | None:
    """What a new job records as its owner: the key's name, or None with keys off."""
    return None if principal is None else principal.name


def may_access_job(principal: Principal | None, owner: str | None) -> bool:
    """Whether ``principal`` may see, download or delete a job owned by ``owner``; when not, the
    route answers exactly what it answers for a job that does not exist (404)."""
    return principal is None or principal.admin or owner == principal.name


def listing_owner(principal: Principal | None) -> str | None:
    """The owner a job listing is filtered to; None lists every job (keys off, or an admin)."""
    return None if principal is None or principal.admin else principal.name


def seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, int((tomorrow - now).total_seconds() + 0.999))


def daily_bytes_exceeded(
    principal: Principal, used: int, incoming: int | None, now: datetime
) -> LimitExceededError:
    """The 429 for a recording that would take ``principal`` past its bytes per UTC day; also
    what the upload streamer raises if a body without a length runs past the allowance."""
    limit = principal.limits.recording_bytes_per_day
    this = f", this upload {incoming} B" if incoming is not None else ""
    retry_after = seconds_to_next_utc_day(now)
    return LimitExceededError(
        f"API key '{principal.name}' is over its limit recording_bytes_per_day={limit} "
        f"({used} B submitted today, UTC{this}); retry after 00:00 UTC, in {retry_after} s",
        limit="recording_bytes_per_day",
        retry_after=retry_after,
    )


async def check_recording_submission(
    quota: JobQuota,
    principal: Principal | None,
    incoming_bytes: int | None,
    *,
    now: datetime | None = None,
) -> int | None:
    """Refuse (``LimitExceededError``, 429 with ``Retry-After``) a recording submission over the
    key's running-jobs or bytes-per-day limit. Else the bytes the upload may still carry today,
    for the upload streamer to stop at; None when there is no daily limit.

    ``incoming_bytes``: the upload's size when known beforehand (``Content-Length``, or a file
    already on disk for an import), else None. Errors of the store itself propagate: a submission
    that cannot be counted cannot be queued either."""
    if principal is None:
        return None
    limits = principal.limits
    if limits.max_running_jobs is not None:
        running = await quota.running_jobs(principal.name)
        if running >= limits.max_running_jobs:
            raise LimitExceededError(
                f"API key '{principal.name}' is at its limit max_running_jobs="
                f"{limits.max_running_jobs} ({running} queued or running); retry when one ends",
                limit="max_running_jobs",
                retry_after=RUNNING_JOBS_RETRY_AFTER_S,
            )
    if limits.recording_bytes_per_day is None:
        return None
    moment = now or datetime.now(UTC)
    used = await quota.recording_bytes_on(principal.name, moment.astimezone(UTC).date())
    allowance = limits.recording_bytes_per_day - used
    if allowance <= 0 or (incoming_bytes is not None and incoming_bytes > allowance):
        raise daily_bytes_exceeded(principal, used, incoming_bytes, moment)
    return allowance
