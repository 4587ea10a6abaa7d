"""The job store for several replicas and workers: PostgreSQL (``CLASSIFIER_DATABASE_URL``).

The same protocol and, where it is the same, the same SQL as the SQLite store (``statements``).
What differs: a claim takes a transaction-level advisory lock, so counting the held leases and
taking a job are one step for the whole cluster (``CLASSIFIER_JOB_WORKERS`` holds across every
worker), and picks its row with ``FOR UPDATE SKIP LOCKED`` so it never waits on a row another
transaction is writing (a cancel, a renewal). The schema is upgraded by numbered migrations
recorded in ``schema_migrations``, under an advisory lock so replicas starting together take turns.

Connections are opened lazily, one per thread, and dropped when broken; while the database is
away every call raises ``JobStoreUnavailableError`` (the job routes' 503), and the next call after
it returns reconnects.
"""

from __future__ import annotations

import builtins
import datetime
import functools
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.rows import dict_row

from classifier.core.errors import JobStoreUnavailableError
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

#: Advisory lock keys (any fixed 64-bit numbers, the same in every process of the cluster).
CLAIM_LOCK = 0x636C6173_00000001
MIGRATION_LOCK = 0x636C6173_00000002
#: Seconds a connection attempt may take before the database counts as away.
CONNECT_TIMEOUT_S = 5
#: Seconds one statement may run before it is abandoned (a stuck lock must not hang a request).
STATEMENT_TIMEOUT_MS = 15_000

#: Numbered schema steps; each runs once, in order, recorded in ``schema_migrations``.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    started_at      DOUBLE PRECISION,
    finished_at     DOUBLE PRECISION,
    model_name      TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    model_sha256    TEXT NOT NULL,
    recording       TEXT NOT NULL,
    input_kind      TEXT NOT NULL,
    input_path      TEXT NOT NULL,
    upload_dir      TEXT,
    parameters      TEXT NOT NULL,
    subject         TEXT,
    session         TEXT,
    metadata        TEXT NOT NULL,
    frames_done     BIGINT NOT NULL DEFAULT 0,
    frames_total    BIGINT,
    seconds_left    DOUBLE PRECISION,
    error_type      TEXT,
    error_message   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_token     BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_expires   DOUBLE PRECISION,
    result_files    TEXT NOT NULL DEFAULT '[]',
    owner           TEXT,
    recording_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE INDEX jobs_by_owner ON jobs (owner, created_at);
CREATE TABLE chores (name TEXT PRIMARY KEY, last_run DOUBLE PRECISION NOT NULL);
CREATE TABLE recording_usage (
    owner TEXT NOT NULL,
    day   TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (owner, day)
);
""",
}
SCHEMA_VERSION = max(MIGRATIONS)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _pg(statement: str) -> str:
    return sql.pyformat(statement)


# Rewritten once: every statement below is in psycopg's parameter style.
_INSERT = _pg(sql.INSERT)
_SELECT_ONE = _pg(sql.SELECT_ONE)
_HELD_LEASES = _pg(sql.HELD_LEASES)
_TAKE = _pg(sql.TAKE + " RETURNING *")
_DESCRIBE_RECORDING = _pg(sql.DESCRIBE_RECORDING)
_FINISH = _pg(sql.FINISH)
_FAIL = _pg(sql.FAIL)
_RELEASE = _pg(sql.RELEASE)
_CANCEL = _pg(sql.CANCEL + " RETURNING *")
_DELETE = _pg(sql.DELETE)
_EXPIRED = _pg(sql.EXPIRED)
_COUNTS = _pg(sql.COUNTS)
_OWNER_RUNNING = _pg(sql.OWNER_RUNNING)
_OWNER_BYTES = _pg(sql.OWNER_BYTES)
_ADD_USAGE = _pg(sql.ADD_USAGE)
_TAKE_TURN = _pg(sql.TAKE_TURN)
_ADD_CHORE = _pg(sql.ADD_CHORE + " ON CONFLICT (name) DO NOTHING")


def _database_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn "the database is away" into the domain's ``JobStoreUnavailableError``."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        store = args[0]
        assert isinstance(store, PostgresJobStore)
        # A connection kept from before a database restart fails at its first use: one retry
        # on a fresh connection tells that apart from a database that is still away.
        for attempt in (1, 2):
            try:
                return method(*args, **kwargs)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                reused = store._drop_connection()
                if attempt == 2 or not reused:
                    raise JobStoreUnavailableError(
                        f"the job database is unavailable: {exc}"
                    ) from exc
        raise AssertionError("unreachable")

    return call


def migrate(url: str) -> list[int]:
    """Bring the schema at ``url`` up to ``SCHEMA_VERSION``; the steps applied (none if current)."""
    with (
        psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as db,
        db.transaction(),
    ):
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    INTEGER PRIMARY KEY,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
        )
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        applied = []
        for version in sorted(MIGRATIONS):
            if version in done:
                continue
            db.execute(MIGRATIONS[version].encode())
            db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


class PostgresJobStore:
    """``JobStore`` on PostgreSQL; safe to use from many threads, processes and machines."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        #: Every thread's connection, so ``close`` can close them all.
        self._connections: builtins.list[psycopg.Connection[dict[str, Any]]] = []

    # --- schema and connections -------------------------------------------------------------

    @_database_errors
    def prepare(self) -> list[int]:
        """Create or upgrade the schema now (start-up); raises while the database is away."""
        return self._ensure_schema()

    def _ensure_schema(self) -> list[int]:
        with self._schema_lock:
            if self._schema_ready:
                return []
            applied = migrate(self.url)
            self._schema_ready = True
            return applied

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        connection: psycopg.Connection[dict[str, Any]] | None = getattr(
            self._local, "connection", None
        )
        if connection is not None and (connection.closed or connection.broken):
            connection = None
        if connection is None:
            self._ensure_schema()  # a store first used after a start with the database away
            connection = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
            self._local.connection = connection
            with self._schema_lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> bool:
        """Forget this thread's connection; whether there was one (opened before this call)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._schema_lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            with suppress(psycopg.Error):
                connection.close()
        return connection is not None

    def close(self) -> None:
        """Close every thread's connection (the app's shutdown); a later call reconnects."""
        with self._schema_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with suppress(psycopg.Error):
                connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        db = self._connection()
        with db.transaction():
            yield db

    def _update(self, statement: str, params: dict[str, Any]) -> bool:
        return self._connection().execute(statement, params).rowcount == 1

    # --- the protocol -----------------------------------------------------------------------

    @_database_errors
    def create(self, new: NewJob) -> Job:
        with self._transaction() as db:
            now = self._clock()
            db.execute(_INSERT, sql.insert_params(new, now))
            usage = sql.usage_params(new, now)
            if usage is not None:
                db.execute(_ADD_USAGE, usage)
        job = self.get(new.id)
        assert job is not None
        return job

    @_database_errors
    def get(self, job_id: str) -> Job | None:
        row = self._connection().execute(_SELECT_ONE, {"id": job_id}).fetchone()
        return None if row is None else sql.row_to_job(row)

    @_database_errors
    def list(self, filters: JobFilters, *, limit: int, offset: int) -> JobPage:
        status = filters.status.value if filters.status is not None else None
        where, params = sql.list_where(status, filters.subject, filters.session, filters.owner)
        db = self._connection()
        total = db.execute(_pg(sql.LIST_TOTAL.format(where=where)), params).fetchone()
        rows = db.execute(
            _pg(sql.LIST_PAGE.format(where=where)), {**params, "limit": limit, "offset": offset}
        ).fetchall()
        count = int(total["n"]) if total is not None else 0
        return JobPage(jobs=[sql.row_to_job(row) for row in rows], total=count)

    @_database_errors
    def claim(
        self, worker_id: str, *, lease_s: float, max_running: int, models: Collection[str]
    ) -> Claim | None:
        if not models:
            return None
        names = sorted(models)
        placeholders = ", ".join(f":model{i}" for i in range(len(names)))
        pick = _pg(sql.CLAIMABLE.format(models=placeholders, lock=" FOR UPDATE SKIP LOCKED"))
        with self._transaction() as db:
            # Held to the end of this transaction: no other claim counts or takes meanwhile.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
            now = self._clock()
            held = db.execute(_HELD_LEASES, {"now": now}).fetchone()
            if held is not None and int(held["n"]) >= max_running:
                return None
            row = db.execute(
                pick, {"now": now, **{f"model{i}": name for i, name in enumerate(names)}}
            ).fetchone()
            if row is None:
                return None
            claimed = db.execute(
                _TAKE, {"owner": worker_id, "expires": now + lease_s, "now": now, "id": row["id"]}
            ).fetchone()
        assert claimed is not None
        job = sql.row_to_job(claimed)
        return Claim(job=job, token=job.lease_token)

    @_database_errors
    def renew(
        self, job_id: str, token: int, *, lease_s: float, progress: Progress | None = None
    ) -> bool:
        statement, params = sql.renewal(job_id, token, self._clock(), lease_s, progress)
        return self._update(_pg(statement), params)

    @_database_errors
    def describe_recording(self, job_id: str, token: int, recording: RecordingSummary) -> bool:
        return self._update(
            _DESCRIBE_RECORDING,
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "recording": sql.to_json(recording.as_dict()),
            },
        )

    @_database_errors
    def finish(
        self,
        job_id: str,
        token: int,
        *,
        recording: RecordingSummary,
        result_files: Collection[str],
    ) -> bool:
        return self._update(
            _FINISH, sql.finish_params(job_id, token, self._clock(), recording, result_files)
        )

    @_database_errors
    def fail(self, job_id: str, token: int, *, error_type: str, message: str) -> bool:
        return self._update(
            _FAIL,
            {
                "id": job_id,
                "token": token,
                "now": self._clock(),
                "type": error_type,
                "message": message,
            },
        )

    @_database_errors
    def release(self, job_id: str, token: int) -> bool:
        return self._update(_RELEASE, {"id": job_id, "token": token, "now": self._clock()})

    @_database_errors
    def request_cancel(self, job_id: str) -> Job | None:
        db = self._connection()
        row = db.execute(_CANCEL, {"id": job_id, "now": self._clock()}).fetchone()
        if row is None:  # unknown, or finished already: as it is
            row = db.execute(_SELECT_ONE, {"id": job_id}).fetchone()
        return None if row is None else sql.row_to_job(row)

    @_database_errors
    def delete(self, job_id: str) -> bool:
        return self._update(_DELETE, {"id": job_id})

    @_database_errors
    def expired(self, finished_before: float) -> builtins.list[Job]:
        rows = self._connection().execute(_EXPIRED, {"before": finished_before}).fetchall()
        return [sql.row_to_job(row) for row in rows]

    @_database_errors
    def counts(self) -> dict[JobStatus, int]:
        rows = self._connection().execute(_COUNTS).fetchall()
        found = {row["status"]: int(row["n"]) for row in rows}
        return {status: found.get(status.value, 0) for status in JobStatus}

    @_database_errors
    def running_jobs(self, owner: str) -> int:
        row = self._connection().execute(_OWNER_RUNNING, {"owner": owner}).fetchone()
        return int(row["n"]) if row is not None else 0

    @_database_errors
    def recording_bytes_on(self, owner: str, day: datetime.date) -> int:
        row = self._connection().execute(_OWNER_BYTES, sql.day_params(owner, day)).fetchone()
        return int(row["n"]) if row is not None else 0

    @_database_errors
    def take_turn(self, chore: str, every_s: float) -> bool:
        db = self._connection()
        db.execute(_ADD_CHORE, {"name": chore})
        now = self._clock()
        taken = db.execute(_TAKE_TURN, {"name": chore, "now": now, "due": now - every_s})
        return taken.rowcount == 1
