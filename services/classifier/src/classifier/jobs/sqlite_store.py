"""The embedded job store: one SQLite file in the data folder, shared by every server process.

WAL mode lets readers (status polls, the job list, metrics scrapes) run while a writer commits.
A claim is one ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across processes, so
the count of held leases and the take-over of a job are one atomic step: however many uvicorn
workers poll, no more than ``max_running`` jobs run. The SQL is kept plain (no SQLite-only
functions beyond ``COALESCE`` and ``CASE``) so a server-backed store can follow it.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from classifier.jobs.records import (
    FINISHED,
    Claim,
    InputKind,
    Job,
    JobFilters,
    JobPage,
    JobStatus,
    ModelSummary,
    NewJob,
    Progress,
    RecordingSummary,
)

SCHEMA_VERSION = 1
#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
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
"""

_FINISHED_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINISHED))


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _row_to_job(row: sqlite3.Row) -> Job:
    kind: InputKind = "video" if row["input_kind"] == "video" else "frames"
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        model=ModelSummary(row["model_name"], row["model_version"], row["model_sha256"]),
        recording=RecordingSummary.from_dict(json.loads(row["recording"])),
        input_kind=kind,
        input_path=row["input_path"],
        upload_dir=row["upload_dir"],
        parameters=json.loads(row["parameters"]),
        subject=row["subject"],
        session=row["session"],
        metadata=json.loads(row["metadata"]),
        progress=Progress(row["frames_done"], row["frames_total"], row["seconds_left"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        attempts=row["attempts"],
        lease_token=row["lease_token"],
        lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"],
        result_files=tuple(json.loads(row["result_files"])),
    )


class SQLiteJobStore:
    """``JobStore`` on one SQLite file; safe to use from many threads and processes at once."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._local = threading.local()
        connection = self._connection()
        connection.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- connections ------------------------------------------------------------------------

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

    def create(self, new: NewJob) -> Job:
        now = self._clock()
        self._connection().execute(
            """INSERT INTO jobs (id, status, created_at, updated_at, model_name, model_version,
                   model_sha256, recording, input_kind, input_path, upload_dir, parameters,
                   subject, session, metadata)
               VALUES (:id, :status, :now, :now, :model_name, :model_version, :model_sha256,
                   :recording, :input_kind, :input_path, :upload_dir, :parameters, :subject,
                   :session, :metadata)""",
            {
                "id": new.id,
                "status": JobStatus.QUEUED.value,
                "now": now,
                "model_name": new.model.name,
                "model_version": new.model.version,
                "model_sha256": new.model.sha256,
                "recording": _json(new.recording.as_dict()),
                "input_kind": new.input_kind,
                "input_path": new.input_path,
                "upload_dir": new.upload_dir,
                "parameters": _json(new.parameters),
                "subject": new.subject,
                "session": new.session,
                "metadata": _json(new.metadata),
            },
        )
        job = self.get(new.id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._connection().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def list(self, filters: JobFilters, *, limit: int, offset: int) -> JobPage:
        clauses, params = [], {}
        if filters.status is not None:
            clauses.append("status = :status")
            params["status"] = filters.status.value
        if filters.subject is not None:
            clauses.append("subject = :subject")
            params["subject"] = filters.subject
        if filters.session is not None:
            clauses.append("session = :session")
            params["session"] = filters.session
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        db = self._connection()
        total = db.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0]
        rows = db.execute(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC "
            "LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        ).fetchall()
        return JobPage(jobs=[_row_to_job(row) for row in rows], total=int(total))

    def claim(
        self, worker_id: str, *, lease_s: float, max_running: int, models: Collection[str]
    ) -> Claim | None:
        if not models:
            return None
        names = sorted(models)
        placeholders = ", ".join(f":model{i}" for i in range(len(names)))
        with self._transaction() as db:
            now = self._clock()
            held = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE lease_owner IS NOT NULL AND lease_expires > :now",
                {"now": now},
            ).fetchone()[0]
            if held >= max_running:
                return None
            row = db.execute(
                f"""SELECT id FROM jobs
                    WHERE model_name IN ({placeholders})
                      AND (status = 'queued'
                           OR (status = 'running' AND lease_expires <= :now))
                    ORDER BY created_at, id LIMIT 1""",
                {"now": now, **{f"model{i}": name for i, name in enumerate(names)}},
            ).fetchone()
            if row is None:
                return None
            db.execute(
                """UPDATE jobs SET status = 'running', lease_owner = :owner,
                       lease_token = lease_token + 1, lease_expires = :expires,
                       attempts = attempts + 1, started_at = COALESCE(started_at, :now),
                       updated_at = :now, frames_done = 0, seconds_left = NULL
                   WHERE id = :id""",
                {"owner": worker_id, "expires": now + lease_s, "now": now, "id": row["id"]},
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        job = _row_to_job(claimed)
        return Claim(job=job, token=job.lease_token)

    def renew(
        self, job_id: str, token: int, *, lease_s: float, progress: Progress | None = None
    ) -> bool:
        now = self._clock()
        params: dict[str, Any] = {
            "id": job_id,
            "token": token,
            "now": now,
            "expires": now + lease_s,
        }
        progress_sql = ""
        if progress is not None:
            progress_sql = ", frames_done = :done, frames_total = :total, seconds_left = :left"
            params.update(
                done=progress.frames_done,
                total=progress.frames_total,
                left=progress.seconds_left,
            )
        return self._update(
            f"""UPDATE jobs SET lease_expires = :expires, updated_at = :now{progress_sql}
                WHERE id = :id AND lease_token = :token AND status = 'running'
                  AND lease_owner IS NOT NULL""",
            params,
        )

    def describe_recording(self, job_id: str, token: int, recording: RecordingSummary) -> bool:
        return self._update(
            """UPDATE jobs SET recording = :recording, updated_at = :now
               WHERE id = :id AND lease_token = :token AND status = 'running'""",
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "recording": _json(recording.as_dict()),
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
            """UPDATE jobs SET status = 'succeeded', finished_at = :now, updated_at = :now,
                   recording = :recording, result_files = :files,
                   frames_done = COALESCE(:frames, frames_done),
                   frames_total = COALESCE(:frames, frames_total), seconds_left = 0,
                   lease_owner = NULL, lease_expires = NULL
               WHERE id = :id AND lease_token = :token AND status = 'running'""",
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "recording": _json(recording.as_dict()),
                "files": _json(list(result_files)),
                "frames": recording.frames,
            },
        )

    def fail(self, job_id: str, token: int, *, error_type: str, message: str) -> bool:
        return self._update(
            """UPDATE jobs SET status = 'failed', finished_at = :now, updated_at = :now,
                   error_type = :type, error_message = :message, seconds_left = NULL,
                   lease_owner = NULL, lease_expires = NULL
               WHERE id = :id AND lease_token = :token AND status = 'running'""",
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "type": error_type,
                "message": message,
            },
        )

    def release(self, job_id: str, token: int) -> bool:
        return self._update(
            """UPDATE jobs SET
                   status = CASE WHEN status = 'running' THEN 'queued' ELSE status END,
                   attempts = CASE WHEN status = 'running' THEN attempts - 1 ELSE attempts END,
                   frames_done = CASE WHEN status = 'running' THEN 0 ELSE frames_done END,
                   seconds_left = NULL, updated_at = :now,
                   lease_owner = NULL, lease_expires = NULL
               WHERE id = :id AND lease_token = :token AND lease_owner IS NOT NULL""",
            {"id": job_id, "token": token, "now": self._clock()},
        )

    def request_cancel(self, job_id: str) -> Job | None:
        with self._transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
                now = self._clock()
                # A running job keeps its lease (and its slot) until its holder has stopped.
                db.execute(
                    """UPDATE jobs SET status = 'cancelled', finished_at = :now,
                           updated_at = :now, seconds_left = NULL
                       WHERE id = :id""",
                    {"id": job_id, "now": now},
                )
            cancelled = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(cancelled)

    def delete(self, job_id: str) -> bool:
        return self._update("DELETE FROM jobs WHERE id = :id", {"id": job_id})

    def expired(self, finished_before: float) -> builtins.list[Job]:
        rows = (
            self._connection()
            .execute(
                f"""SELECT * FROM jobs WHERE status IN ({_FINISHED_SQL})
                AND finished_at < :before ORDER BY finished_at""",
                {"before": finished_before},
            )
            .fetchall()
        )
        return [_row_to_job(row) for row in rows]

    def counts(self) -> dict[JobStatus, int]:
        rows = (
            self._connection()
            .execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetchall()
        )
        found = {row["status"]: int(row["n"]) for row in rows}
        return {status: found.get(status.value, 0) for status in JobStatus}
