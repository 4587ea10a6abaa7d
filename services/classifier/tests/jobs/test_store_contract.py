"""The job store contract, on SQLite and on PostgreSQL alike: listing, claims under one global
limit across processes, fenced leases, take-over after a lapse, release, cancellation, expiry,
per-owner quotas, cluster-wide chores and schema migrations."""

from __future__ import annotations

import datetime
import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from classifier.jobs import postgres_store
from classifier.jobs.postgres_store import PostgresJobStore
from classifier.jobs.records import (
    Claim,
    JobFilters,
    JobStatus,
    ModelSummary,
    NewJob,
    Progress,
    RecordingSummary,
)
from classifier.jobs.sqlite_store import SQLiteJobStore
from classifier.jobs.store import JobStore

MODEL = ModelSummary("brightness", "1.0.0", "ab" * 32)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def new_job(
    job_id: str,
    *,
    model: ModelSummary = MODEL,
    subject: str | None = None,
    owner: str | None = None,
    recording_bytes: int = 0,
) -> NewJob:
    return NewJob(
        id=job_id,
        model=model,
        recording=RecordingSummary(filename=f"{job_id}.mp4", fps=30.0, width=64, height=64),
        input_kind="video",
        input_path=f"/data/uploads/{job_id}/video.mp4",
        upload_dir=f"/data/uploads/{job_id}",
        parameters={"stride": 1, "min_bout_ms": None, "bin_s": None},
        subject=subject,
        session="day1" if subject else None,
        metadata={"cage": 3},
        owner=owner,
        recording_bytes=recording_bytes,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: an SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


def open_store(location: str, clock: Clock | None = None) -> JobStore:
    kwargs = {} if clock is None else {"clock": clock}
    if location.startswith("postgresql://"):
        store = PostgresJobStore(location, **kwargs)
        store.prepare()
        return store
    return SQLiteJobStore(Path(location), **kwargs)


@pytest.fixture
def store(store_location: str, clock: Clock) -> Iterator[JobStore]:
    opened = open_store(store_location, clock)
    yield opened
    close(opened)


def close(store: JobStore) -> None:
    store.close()


def claim(
    store: JobStore, worker: str = "w1", *, max_running: int = 1, lease: float = 10
) -> Claim | None:
    return store.claim(worker, lease_s=lease, max_running=max_running, models=[MODEL.name])


def test_a_created_job_reads_back_as_queued_with_everything_submitted(
    store: JobStore, clock: Clock
) -> None:
    created = store.create(new_job("a", subject="m1"))

    job = store.get("a")
    assert job == created
    assert job is not None
    assert (job.status, job.created_at, job.updated_at) == (JobStatus.QUEUED, clock.now, clock.now)
    assert (job.started_at, job.finished_at, job.attempts, job.lease_owner) == (None, None, 0, None)
    assert (job.subject, job.session, job.metadata) == ("m1", "day1", {"cage": 3})
    assert job.recording.filename == "a.mp4"
    assert job.progress == Progress(0, None, None)
    assert store.get("missing") is None


def test_the_list_is_newest_first_paged_and_filtered(store: JobStore, clock: Clock) -> None:
    for index, subject in enumerate(["m1", "m2", "m1", "m1", None]):
        clock.now += 1
        store.create(new_job(f"job{index}", subject=subject))

    page = store.list(JobFilters(), limit=2, offset=0)
    assert ([job.id for job in page.jobs], page.total) == (["job4", "job3"], 5)
    page = store.list(JobFilters(), limit=2, offset=4)
    assert ([job.id for job in page.jobs], page.total) == (["job0"], 5)
    page = store.list(JobFilters(subject="m1"), limit=10, offset=0)
    assert ([job.id for job in page.jobs], page.total) == (["job3", "job2", "job0"], 3)
    claimed = claim(store)
    assert claimed is not None
    assert claimed.job.id == "job0"  # the oldest queued job is claimed first
    page = store.list(JobFilters(status=JobStatus.RUNNING), limit=10, offset=0)
    assert [job.id for job in page.jobs] == ["job0"]
    page = store.list(
        JobFilters(subject="m1", session="day1", status=JobStatus.QUEUED), limit=10, offset=0
    )
    assert [job.id for job in page.jobs] == ["job3", "job2"]


def test_claims_stop_at_the_limit_of_running_jobs(store: JobStore) -> None:
    for name in "abc":
        store.create(new_job(name))

    first = claim(store, "w1", max_running=2)
    second = claim(store, "w2", max_running=2)
    third = claim(store, "w3", max_running=2)

    assert first is not None
    assert second is not None
    assert (first.job.id, second.job.id, third) == ("a", "b", None)
    assert first.job.status is JobStatus.RUNNING
    assert (first.job.attempts, first.token, first.job.lease_owner) == (1, 1, "w1")
    assert store.counts()[JobStatus.QUEUED] == 1


def test_claims_only_jobs_of_the_models_it_serves(store: JobStore) -> None:
    store.create(new_job("other", model=ModelSummary("other-model", "1", "cd" * 32)))

    assert claim(store) is None
    taken = store.claim("w", lease_s=10, max_running=1, models=["other-model"])
    assert taken is not None
    assert taken.job.id == "other"


def test_a_renewal_records_progress_and_a_lapsed_lease_is_taken_over_with_a_new_token(
    store: JobStore, clock: Clock
) -> None:
    store.create(new_job("a"))
    first = claim(store, "w1", lease=10)
    assert first is not None

    clock.now += 5
    assert store.renew("a", first.token, lease_s=10, progress=Progress(256, 900, 12.5))
    job = store.get("a")
    assert job is not None
    assert (job.progress, job.lease_expires) == (Progress(256, 900, 12.5), clock.now + 10)

    clock.now += 9  # within the renewed lease: a second worker finds nothing to take
    assert claim(store, "w2") is None
    clock.now += 2  # past it: the holder is presumed dead
    second = claim(store, "w2")
    assert second is not None
    assert (second.job.id, second.token, second.job.attempts) == ("a", 2, 2)
    assert second.job.progress.frames_done == 0

    # The old holder is fenced off: none of its writes land.
    assert not store.renew("a", first.token, lease_s=10)
    assert not store.finish(
        "a", first.token, recording=RecordingSummary("a.mp4", frames=5), result_files=["x"]
    )
    assert not store.fail("a", first.token, error_type="x", message="y")
    assert not store.release("a", first.token)
    job = store.get("a")
    assert job is not None
    assert (job.status, job.lease_owner) == (JobStatus.RUNNING, "w2")

    assert store.finish(
        "a",
        second.token,
        recording=RecordingSummary("a.mp4", frames=900, fps=30.0),
        result_files=["frames.csv", "results.zip"],
    )
    job = store.get("a")
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert (job.finished_at, job.lease_owner, job.lease_expires) == (clock.now, None, None)
    assert job.progress == Progress(900, 900, 0)
    assert job.result_files == ("frames.csv", "results.zip")
    assert job.recording.frames == 900


def test_a_release_puts_the_job_back_without_spending_its_start(store: JobStore) -> None:
    store.create(new_job("a"))
    held = claim(store)
    assert held is not None

    assert store.release("a", held.token)

    job = store.get("a")
    assert job is not None
    assert (job.status, job.attempts, job.lease_owner) == (JobStatus.QUEUED, 0, None)
    again = claim(store)
    assert again is not None
    assert (again.token, again.job.attempts) == (2, 1)


def test_a_failure_is_recorded_with_its_reason(store: JobStore) -> None:
    store.create(new_job("a"))
    held = claim(store)
    assert held is not None

    assert store.fail("a", held.token, error_type="corrupt_recording", message="frame 7")

    job = store.get("a")
    assert job is not None
    assert (job.status, job.error_type, job.error_message) == (
        JobStatus.FAILED,
        "corrupt_recording",
        "frame 7",
    )
    assert job.lease_owner is None


def test_cancelling_a_running_job_keeps_its_slot_until_its_holder_lets_go(
    store: JobStore,
) -> None:
    store.create(new_job("a"))
    store.create(new_job("b"))
    held = claim(store)
    assert held is not None

    cancelled = store.request_cancel("a")

    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert not store.renew("a", held.token, lease_s=10)  # the holder learns at its renewal
    assert claim(store) is None  # still stopping: the slot is taken
    assert store.release("a", held.token)
    job = store.get("a")
    assert job is not None
    assert (job.status, job.lease_owner) == (JobStatus.CANCELLED, None)
    taken = claim(store)
    assert taken is not None
    assert taken.job.id == "b"


def test_cancelling_a_queued_job_and_a_finished_one(store: JobStore) -> None:
    store.create(new_job("a"))
    cancelled = store.request_cancel("a")
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert claim(store) is None

    again = store.request_cancel("a")  # already finished: returned unchanged
    assert again == store.get("a")
    assert store.request_cancel("missing") is None


def test_expired_lists_finished_jobs_past_the_cutoff_and_delete_removes_them(
    store: JobStore, clock: Clock
) -> None:
    store.create(new_job("old"))
    store.create(new_job("running"))
    store.request_cancel("old")
    held = claim(store)
    assert held is not None
    assert held.job.id == "running"
    clock.now += 100

    assert [job.id for job in store.expired(clock.now - 50)] == ["old"]
    assert store.expired(clock.now - 200) == []
    assert store.delete("old")
    assert not store.delete("old")
    assert store.get("old") is None
    counts = store.counts()
    assert counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.CANCELLED] == 0


def _claim_in_another_process(
    location: str, worker: str, results: multiprocessing.Queue[tuple[str, list[str]]]
) -> None:
    store = open_store(location)
    taken = []
    for _ in range(10):
        claimed = store.claim(worker, lease_s=60, max_running=2, models=[MODEL.name])
        if claimed is not None:
            taken.append(claimed.job.id)
    close(store)
    results.put((worker, taken))


def test_the_limit_holds_for_processes_claiming_at_once(store_location: str) -> None:
    store = open_store(store_location)
    for index in range(10):
        store.create(new_job(f"job{index}"))
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[str, list[str]]] = context.Queue()
    processes = [
        context.Process(target=_claim_in_another_process, args=(store_location, f"w{n}", results))
        for n in range(4)
    ]
    for process in processes:
        process.start()
    taken = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    claimed = sorted(job for _, jobs in taken for job in jobs)
    assert len(claimed) == 2
    assert len(set(claimed)) == 2
    assert store.counts()[JobStatus.RUNNING] == 2
    close(store)


def test_quotas_count_an_owners_unfinished_jobs_and_its_bytes_per_utc_day(
    store: JobStore, clock: Clock
) -> None:
    day = datetime.datetime.fromtimestamp(clock.now, datetime.UTC).date()
    store.create(new_job("a", owner="key1", recording_bytes=1000))
    store.create(new_job("b", owner="key1", recording_bytes=250))
    store.create(new_job("c", owner="key2", recording_bytes=7))
    store.create(new_job("d", recording_bytes=99))
    clock.now += 86_400
    store.create(new_job("e", owner="key1", recording_bytes=5))
    held = claim(store)  # "a", the oldest
    assert held is not None
    assert store.fail("a", held.token, error_type="x", message="y")

    assert store.get("b") is not None
    assert store.get("b").owner == "key1"  # type: ignore[union-attr]
    assert store.running_jobs("key1") == 2  # b queued, e queued; a finished
    assert store.running_jobs("key2") == 1
    assert store.running_jobs("nobody") == 0
    assert store.recording_bytes_on("key1", day) == 1250  # finished jobs still count
    assert store.recording_bytes_on("key1", day + datetime.timedelta(days=1)) == 5
    assert store.recording_bytes_on("key2", day - datetime.timedelta(days=1)) == 0


def test_a_chore_falls_to_one_caller_per_interval(store_location: str, clock: Clock) -> None:
    first, second = open_store(store_location, clock), open_store(store_location, clock)

    assert first.take_turn("retention", 60)
    assert not second.take_turn("retention", 60)
    assert not first.take_turn("retention", 60)
    clock.now += 59
    assert not second.take_turn("retention", 60)
    clock.now += 1
    assert second.take_turn("retention", 60)
    assert not first.take_turn("retention", 60)
    assert first.take_turn("other-chore", 60)  # chores are counted apart
    close(first)
    close(second)


def test_postgres_migrations_are_numbered_recorded_and_run_once(postgres_url: str) -> None:
    store = PostgresJobStore(postgres_url)

    assert store.prepare() == sorted(postgres_store.MIGRATIONS)
    second = PostgresJobStore(postgres_url)
    assert second.prepare() == []  # a second replica: nothing to do
    assert postgres_store.migrate(postgres_url) == []
    with psycopg.connect(postgres_url) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
        tables = {
            row[0]
            for row in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert versions == [postgres_store.SCHEMA_VERSION]
    # KEDA's scaler counts queued and running jobs in this table (deploy/kubernetes).
    assert {"jobs", "chores", "schema_migrations"} <= tables
    store.close()
    second.close()


def test_an_sqlite_store_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    from classifier.jobs.sqlite_store import _MIGRATIONS

    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(_MIGRATIONS[1])
        old.execute("PRAGMA user_version = 1")
        old.execute(
            """INSERT INTO jobs (id, status, created_at, updated_at, model_name, model_version,
                   model_sha256, recording, input_kind, input_path, parameters, metadata)
               VALUES ('kept', 'queued', 1, 1, 'brightness', '1', 'ab', '{"filename": "a.mp4"}',
                   'video', '/a.mp4', '{}', '{}')"""
        )

    store = SQLiteJobStore(path)

    assert store.prepare() == [2]
    kept = store.get("kept")
    assert kept is not None
    assert (kept.status, kept.owner, kept.recording_bytes) == (JobStatus.QUEUED, None, 0)
    assert SQLiteJobStore(path).prepare() == []
