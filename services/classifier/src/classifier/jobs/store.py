"""The one seam between jobs and where they are kept: the ``JobStore`` protocol.

The embedded default is SQLite in the data folder (``sqlite_store.SQLiteJobStore``); a
server-backed store for several replicas implements the same protocol. Every write about a
running job carries the fencing token its claim returned: a holder whose lease lapsed (and whose
job another process took over) finds its writes refused and stops, so two processes never both
finish one job.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
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
