"""The embedded job store: one SQLite file in the data folder, shared by every server process.

WAL mode lets readers (status polls, the job list, metrics scrapes) run while a writer commits.
A claim is one ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across processes, so
the count of held leases and the take-over of a job are one atomic step: however many uvicorn
workers poll, no more than ``max_running`` jobs run. The SQL is kept plain (no SQLite-only
functions beyond ``COALESCE`` and ``CASE``): ``statements`` holds it for both stores.
"""

from __future__ import annotations

import builtins
import datetime
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from classifier.jobs import statements as sql
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
from classifier.jobs.statements import insert_params

#: The schema's version, kept in ``PRAGMA user_version``; each step upgrades from the one before.
SCHEMA_VERSION = 2
#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_S = 10.0

_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    model_name    TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256  TEXT NOT NULL,
    recording     TEXT NOT NULL,
    input_kind    TEXT NOT NULL,
    input_path    TEXT NOT NULL,
    upload_dir    TEXT,
    parameters    TEXT NOT NULL,
    subject       TEXT,
    session       TEXT,
    metadata      TEXT NOT NULL,
    frames_done   INTEGER NOT NULL DEFAULT 0,
    frames_total  INTEGER,
    seconds_left  REAL,
    error_type    TEXT,
    error_message TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_token   INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_expires REAL,
    result_files  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
""",
    2: """
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN recording_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created_at);
CREATE TABLE IF NOT EXISTS chores (name TEXT PRIMARY KEY, last_run REAL NOT NULL);
CREATE TABLE IF NOT EXISTS recording_usage (
    owner TEXT NOT NULL,
    day   TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (owner, day)
);
""",
}


class SQLiteJobStore:
    """``JobStore`` on one SQLite file; safe to use from many threads and processes at once."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._local = threading.local()
        self._use_wal(self._connection())
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            self._applied = list(range(version + 1, SCHEMA_VERSION + 1))
            for step in self._applied:
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- connections ------------------------------------------------------------------------

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Switch the database to WAL mode, waiting out another process doing the same: the
        switch can answer "database is locked" at once, without SQLite's busy timeout, while
        another connection sets up the WAL file (the uvicorn workers of a new data folder
        open the store together)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections must stay in their thread)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
            )
            connection.row_factory = sqlite3.Row
            # NORMAL is durable in WAL mode up to the last checkpointed commit on power loss,
            # and never corrupts; FULL would fsync every progress write.
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taking the database's write lock at once (``BEGIN IMMEDIATE``),
        so a read-then-write inside it cannot interleave with another process's."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _update(self, sql: str, params: dict[str, Any]) -> bool:
        cursor = self._connection().execute(sql, params)
        return cursor.rowcount == 1

    # --- the protocol -----------------------------------------------------------------------

    def close(self) -> None:
        """This thread's connection (each thread's closes when the thread ends)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def prepare(self) -> builtins.list[int]:
        """The schema was upgraded when the store was opened: the steps that took."""
        return list(self._applied)

    def create(self, new: NewJob) -> Job:
        with self._transaction() as db:
            now = self._clock()
            db.execute(sql.INSERT, insert_params(new, now))
            usage = sql.usage_params(new, now)
            if usage is not None:
                db.execute(sql.ADD_USAGE, usage)
        job = self.get(new.id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._connection().execute(sql.SELECT_ONE, {"id": job_id}).fetchone()
        return None if row is None else sql.row_to_job(row)

    def list(self, filters: JobFilters, *, limit: int, offset: int) -> JobPage:
        status = filters.status.value if filters.status is not None else None
        where, params = sql.list_where(status, filters.subject, filters.session, filters.owner)
        db = self._connection()
        total = db.execute(sql.LIST_TOTAL.format(where=where), params).fetchone()[0]
        rows = db.execute(
            sql.LIST_PAGE.format(where=where), {**params, "limit": limit, "offset": offset}
        ).fetchall()
        return JobPage(jobs=[sql.row_to_job(row) for row in rows], total=int(total))

    def claim(
        self, worker_id: str, *, lease_s: float, max_running: int, models: Collection[str]
    ) -> Claim | None:
        if not models:
            return None
        names = sorted(models)
        placeholders = ", ".join(f":model{i}" for i in range(len(names)))
        # BEGIN IMMEDIATE serialises claims across processes: the count and the take are atomic.
        with self._transaction() as db:
            now = self._clock()
            held = db.execute(sql.HELD_LEASES, {"now": now}).fetchone()[0]
            if held >= max_running:
                return None
            row = db.execute(
                sql.CLAIMABLE.format(models=placeholders, lock=""),
                {"now": now, **{f"model{i}": name for i, name in enumerate(names)}},
            ).fetchone()
            if row is None:
                return None
            db.execute(
                sql.TAKE,
                {"owner": worker_id, "expires": now + lease_s, "now": now, "id": row["id"]},
            )
            claimed = db.execute(sql.SELECT_ONE, {"id": row["id"]}).fetchone()
        job = sql.row_to_job(claimed)
        return Claim(job=job, token=job.lease_token)

    def renew(
        self, job_id: str, token: int, *, lease_s: float, progress: Progress | None = None
    ) -> bool:
        statement, params = sql.renewal(job_id, token, self._clock(), lease_s, progress)
        return self._update(statement, params)

    def describe_recording(self, job_id: str, token: int, recording: RecordingSummary) -> bool:
        return self._update(
            sql.DESCRIBE_RECORDING,
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "recording": sql.to_json(recording.as_dict()),
            },
        )

    def finish(
        self,
        job_id: str,
        token: int,
        *,
        recording: RecordingSummary,
        result_files: Collection[str],
    ) -> bool:
        return self._update(
            sql.FINISH, sql.finish_params(job_id, token, self._clock(), recording, result_files)
        )

    def fail(self, job_id: str, token: int, *, error_type: str, message: str) -> bool:
        return self._update(
            sql.FAIL,
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "type": error_type,
                "message": message,
            },
        )

    def release(self, job_id: str, token: int) -> bool:
        return self._update(sql.RELEASE, {"id": job_id, "token": token, "now": self._clock()})

    def request_cancel(self, job_id: str) -> Job | None:
        with self._transaction() as db:
            db.execute(sql.CANCEL, {"id": job_id, "now": self._clock()})
            row = db.execute(sql.SELECT_ONE, {"id": job_id}).fetchone()
        return None if row is None else sql.row_to_job(row)

    def delete(self, job_id: str) -> bool:
        return self._update(sql.DELETE, {"id": job_id})

    def expired(self, finished_before: float) -> builtins.list[Job]:
        rows = self._connection().execute(sql.EXPIRED, {"before": finished_before}).fetchall()
        return [sql.row_to_job(row) for row in rows]

    def counts(self) -> dict[JobStatus, int]:
        rows = self._connection().execute(sql.COUNTS).fetchall()
        found = {row["status"]: int(row["n"]) for row in rows}
        return {status: found.get(status.value, 0) for status in JobStatus}

    def running_jobs(self, owner: str) -> int:
        return int(self._connection().execute(sql.OWNER_RUNNING, {"owner": owner}).fetchone()[0])

    def recording_bytes_on(self, owner: str, day: datetime.date) -> int:
        row = self._connection().execute(sql.OWNER_BYTES, sql.day_params(owner, day)).fetchone()
        return int(row[0])

    def take_turn(self, chore: str, every_s: float) -> bool:
        with self._transaction() as db:
            if db.execute(sql.CHORE, {"name": chore}).fetchone() is None:
                db.execute(sql.ADD_CHORE, {"name": chore})
            now = self._clock()
            taken = db.execute(sql.TAKE_TURN, {"name": chore, "now": now, "due": now - every_s})
            return taken.rowcount == 1
