"""The one seam between jobs and where they are kept: the ``JobStore`` protocol.

The embedded default is SQLite in the data folder (``sqlite_store.SQLiteJobStore``); PostgreSQL
(``postgres_store.PostgresJobStore``, when ``CLASSIFIER_DATABASE_URL`` is set) serves several
replicas and workers on the same protocol; ``open_job_store`` picks one. Every write about a
running job carries the fencing token its claim returned: a holder whose lease lapsed (and whose
job another process took over) finds its writes refused and stops, so two processes never both
finish one job.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Protocol

from classifier.jobs.records import (
    Claim,
    Job,
    JobFilters,
    JobPage,
    JobStatus,
    NewJob,
    Progress,
    RecordingSummary,
)


class JobStore(Protocol):
    def prepare(self) -> builtins.list[int]:
        """Create or upgrade the schema (start-up, ``python -m classifier migrate``); the
        migration steps applied. A server-backed store raises ``JobStoreUnavailableError``
        while its database is away, and tries again at first use."""
        ...

    def close(self) -> None:
        """Let go of connections (shutdown); a later call opens them again."""
        ...

    def create(self, new: NewJob) -> Job:
        """Store a queued job."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def list(self, filters: JobFilters, *, limit: int, offset: int) -> JobPage:
        """Jobs matching ``filters``, newest first, and how many match in all."""
        ...

    def claim(
        self, worker_id: str, *, lease_s: float, max_running: int, models: Collection[str]
    ) -> Claim | None:
        """Atomically take the oldest queued job of one of ``models`` (or a running one whose
        lease lapsed), unless ``max_running`` leases are already held across the whole store."""
        ...

    def renew(
        self, job_id: str, token: int, *, lease_s: float, progress: Progress | None = None
    ) -> bool:
        """Extend the lease (and record progress); False when the job is no longer this
        holder's to run: cancelled, deleted, or taken over after a lapse."""
        ...

    def describe_recording(self, job_id: str, token: int, recording: RecordingSummary) -> bool:
        """Replace the job's recording summary with what decoding found."""
        ...

    def finish(
        self,
        job_id: str,
        token: int,
        *,
        recording: RecordingSummary,
        result_files: Collection[str],
    ) -> bool:
        """Mark the job succeeded; False (and no change) when the token is stale."""
        ...

    def fail(self, job_id: str, token: int, *, error_type: str, message: str) -> bool: ...

    def release(self, job_id: str, token: int) -> bool:
        """Let go of a job: a running one goes back to the queue (its start not counted), a
        cancelled one just gives up its lease."""
        ...

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a running one's holder stops at its next renewal);
        the job as it is afterwards, None if unknown. A finished job is returned unchanged."""
        ...

    def delete(self, job_id: str) -> bool: ...

    def expired(self, finished_before: float) -> builtins.list[Job]:
        """Finished jobs whose end lies before ``finished_before`` (for retention)."""
        ...

    def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status now."""
        ...

    # The per-key quotas (``security.ownership.JobQuota``, called through a worker thread).

    def running_jobs(self, owner: str) -> int:
        """How many of ``owner``'s jobs are queued or running now."""
        ...

    def recording_bytes_on(self, owner: str, day: date) -> int:
        """Recording bytes ``owner`` submitted on UTC ``day``, jobs since deleted or expired
        included: ``create`` adds a job's bytes to a per-owner daily tally that ``delete`` never
        touches."""
        ...

    def take_turn(self, chore: str, every_s: float) -> bool:
        """True for exactly one caller, across every process sharing the store, once per
        ``every_s`` seconds: who runs a cluster-wide chore such as retention this time."""
        ...


def open_job_store(database_url: str | None, sqlite_path: Path) -> JobStore:
    """PostgreSQL when a database URL is set (several replicas), else the embedded SQLite file.
    Opening PostgreSQL connects to nothing yet: see ``PostgresJobStore.prepare``."""
    if database_url:
        from classifier.jobs.postgres_store import PostgresJobStore

        return PostgresJobStore(database_url)
    from classifier.jobs.sqlite_store import SQLiteJobStore

    return SQLiteJobStore(sqlite_path)
