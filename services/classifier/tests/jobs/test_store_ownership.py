"""The SQLite job store's side of ownership: a job's owner and bytes, the owner filter of the
list, the per-owner counts the quotas read, and a database from before them upgraded in place."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from classifier.jobs.records import JobFilters, JobStatus, ModelSummary, NewJob, RecordingSummary
from classifier.jobs.sqlite_store import SQLiteJobStore

MODEL = ModelSummary("brightness", "1.0.0", "ab" * 32)
#: 2026-12-01 23:00 UTC: an hour before the next UTC day.
LATE = datetime(2026, 12, 1, 23, 0, tzinfo=UTC).timestamp()
DEC_1, DEC_2 = date(2026, 12, 1), date(2026, 12, 2)

#: The jobs table as version 1 of the store made it (before owners and bytes).
VERSION_1_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, started_at REAL, finished_at REAL, model_name TEXT NOT NULL,
    model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL, recording TEXT NOT NULL,
    input_kind TEXT NOT NULL, input_path TEXT NOT NULL, upload_dir TEXT,
    parameters TEXT NOT NULL, subject TEXT, session TEXT, metadata TEXT NOT NULL,
    frames_done INTEGER NOT NULL DEFAULT 0, frames_total INTEGER, seconds_left REAL,
    error_type TEXT, error_message TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    lease_token INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires REAL,
    result_files TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO jobs (id, status, created_at, updated_at, model_name, model_version, model_sha256,
    recording, input_kind, input_path, parameters, metadata)
VALUES ('old', 'succeeded', 1.0, 2.0, 'brightness', '1.0.0', 'ab', '{"filename": "old.mp4"}',
    'video', '/data/old.mp4', '{}', '{}');
PRAGMA user_version = 1;
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_job(job_id: str, owner: str | None, recording_bytes: int = 0) -> NewJob:
    return NewJob(
        id=job_id,
        model=MODEL,
        recording=RecordingSummary(filename=f"{job_id}.mp4"),
        input_kind="video",
        input_path=f"/data/uploads/{job_id}/video.mp4",
        upload_dir=f"/data/uploads/{job_id}",
        parameters={},
        owner=owner,
        recording_bytes=recording_bytes,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(LATE)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SQLiteJobStore:
    return SQLiteJobStore(tmp_path / "jobs.sqlite3", clock=clock)


def test_a_job_keeps_its_owner_and_bytes(store: SQLiteJobStore) -> None:
    created = store.create(new_job("a", "lab", 1234))
    keys_off = store.create(new_job("b", None))

    assert (created.owner, created.recording_bytes) == ("lab", 1234)
    stored = store.get("a")
    assert stored is not None
    assert (stored.owner, stored.recording_bytes) == ("lab", 1234)
    assert (keys_off.owner, keys_off.recording_bytes) == (None, 0)


def test_the_list_filters_by_owner_and_none_lists_all(store: SQLiteJobStore) -> None:
    for job_id, owner in (("a", "lab"), ("b", "other"), ("c", "lab"), ("d", None)):
        store.create(new_job(job_id, owner))

    mine = store.list(JobFilters(owner="lab"), limit=10, offset=0)
    theirs = store.list(JobFilters(owner="other"), limit=10, offset=0)
    everyone = store.list(JobFilters(), limit=10, offset=0)

    assert (sorted(job.id for job in mine.jobs), mine.total) == (["a", "c"], 2)
    assert ([job.id for job in theirs.jobs], theirs.total) == (["b"], 1)
    assert everyone.total == 4


def test_running_jobs_counts_an_owners_queued_and_running_jobs_only(
    store: SQLiteJobStore,
) -> None:
    for job_id in ("a", "b", "c", "d"):
        store.create(new_job(job_id, "lab"))
    store.create(new_job("x", "other"))
    claim = store.claim("w", lease_s=60, max_running=1, models=["brightness"])
    assert claim is not None
    assert claim.job.id == "a"  # a: running; b, c, d: queued
    assert store.running_jobs("lab") == 4

    assert store.finish("a", claim.token, recording=claim.job.recording, result_files=[])
    assert store.request_cancel("b") is not None

    cancelled = store.get("b")
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert store.running_jobs("lab") == 2
    assert store.running_jobs("other") == 1
    assert store.running_jobs("nobody") == 0


def test_bytes_add_up_per_owner_and_utc_day_and_outlive_the_jobs(
    store: SQLiteJobStore, clock: Clock
) -> None:
    store.create(new_job("a", "lab", 1000))
    store.create(new_job("b", "lab", 500))
    store.create(new_job("x", "other", 70))
    store.create(new_job("keys-off", None, 9999))  # no owner: nothing to count against
    clock.now = LATE + 2 * 3600  # 01:00 UTC on the next day
    store.create(new_job("c", "lab", 30))
    # The route names the day its check counted on; it wins over the store's clock.
    store.create(replace(new_job("d", "lab", 4), usage_day=DEC_1))

    assert store.recording_bytes_on("lab", DEC_1) == 1504
    assert store.recording_bytes_on("lab", DEC_2) == 30
    assert store.recording_bytes_on("other", DEC_1) == 70
    assert store.recording_bytes_on("nobody", DEC_1) == 0

    for job_id in ("a", "b", "c", "d"):
        assert store.delete(job_id)
    assert store.recording_bytes_on("lab", DEC_1) == 1504
    assert store.recording_bytes_on("lab", DEC_2) == 30


def test_a_version_1_database_is_upgraded_in_place_keeping_its_jobs(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_1_SCHEMA)

    store = SQLiteJobStore(path, clock=clock)
    old = store.get("old")
    store.create(new_job("new", "lab", 10))
    reopened = SQLiteJobStore(path, clock=clock)  # a second start finds nothing to add

    assert old is not None
    assert (old.status, old.owner, old.recording_bytes) == (JobStatus.SUCCEEDED, None, 0)
    assert reopened.recording_bytes_on("lab", DEC_1) == 10
    assert reopened.list(JobFilters(owner="lab"), limit=10, offset=0).total == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
