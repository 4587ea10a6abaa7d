"""The SQL both job stores run unchanged (SQLite and PostgreSQL), and the row-to-``Job`` mapping.

Statements use ``:name`` parameters (SQLite's own style); the PostgreSQL store rewrites them to
psycopg's ``%(name)s`` once, at import. Only what differs stays in each store: the schema's types,
how a claim takes its lock, and how a connection is opened.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from classifier.jobs.records import (
    FINISHED,
    InputKind,
    Job,
    JobStatus,
    ModelSummary,
    NewJob,
    Progress,
    RecordingSummary,
)

FINISHED_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINISHED))

INSERT = """INSERT INTO jobs (id, status, created_at, updated_at, model_name, model_version,
       model_sha256, recording, input_kind, input_path, upload_dir, parameters,
       subject, session, metadata, owner, recording_bytes)
   VALUES (:id, :status, :now, :now, :model_name, :model_version, :model_sha256,
       :recording, :input_kind, :input_path, :upload_dir, :parameters, :subject,
       :session, :metadata, :owner, :recording_bytes)"""

SELECT_ONE = "SELECT * FROM jobs WHERE id = :id"

HELD_LEASES = (
    "SELECT COUNT(*) AS n FROM jobs WHERE lease_owner IS NOT NULL AND lease_expires > :now"
)

# The oldest queued job of the models served, or a running one whose lease lapsed. ``{lock}``
# is PostgreSQL's ``FOR UPDATE SKIP LOCKED`` (SQLite's whole-database write lock needs none).
CLAIMABLE = """SELECT id FROM jobs
    WHERE model_name IN ({models})
      AND (status = 'queued' OR (status = 'running' AND lease_expires <= :now))
    ORDER BY created_at, id LIMIT 1{lock}"""

TAKE = """UPDATE jobs SET status = 'running', lease_owner = :owner,
       lease_token = lease_token + 1, lease_expires = :expires,
       attempts = attempts + 1, started_at = COALESCE(started_at, :now),
       updated_at = :now, frames_done = 0, seconds_left = NULL
   WHERE id = :id"""

RENEW = """UPDATE jobs SET lease_expires = :expires, updated_at = :now{progress}
    WHERE id = :id AND lease_token = :token AND status = 'running'
      AND lease_owner IS NOT NULL"""

RENEW_PROGRESS = ", frames_done = :done, frames_total = :total, seconds_left = :left"

DESCRIBE_RECORDING = """UPDATE jobs SET recording = :recording, updated_at = :now
   WHERE id = :id AND lease_token = :token AND status = 'running'"""

FINISH = """UPDATE jobs SET status = 'succeeded', finished_at = :now, updated_at = :now,
       recording = :recording, result_files = :files,
       frames_done = COALESCE(:frames, frames_done),
       frames_total = COALESCE(:frames, frames_total), seconds_left = 0,
       lease_owner = NULL, lease_expires = NULL
   WHERE id = :id AND lease_token = :token AND status = 'running'"""

FAIL = """UPDATE jobs SET status = 'failed', finished_at = :now, updated_at = :now,
       error_type = :type, error_message = :message, seconds_left = NULL,
       lease_owner = NULL, lease_expires = NULL
   WHERE id = :id AND lease_token = :token AND status = 'running'"""

RELEASE = """UPDATE jobs SET
       status = CASE WHEN status = 'running' THEN 'queued' ELSE status END,
       attempts = CASE WHEN status = 'running' THEN attempts - 1 ELSE attempts END,
       frames_done = CASE WHEN status = 'running' THEN 0 ELSE frames_done END,
       seconds_left = NULL, updated_at = :now,
       lease_owner = NULL, lease_expires = NULL
   WHERE id = :id AND lease_token = :token AND lease_owner IS NOT NULL"""

# A running job keeps its lease (and its slot) until its holder has stopped.
CANCEL = """UPDATE jobs SET status = 'cancelled', finished_at = :now,
       updated_at = :now, seconds_left = NULL
   WHERE id = :id AND status IN ('queued', 'running')"""

DELETE = "DELETE FROM jobs WHERE id = :id"

EXPIRED = f"""SELECT * FROM jobs WHERE status IN ({FINISHED_SQL})
    AND finished_at < :before ORDER BY finished_at"""

COUNTS = "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"

# Quotas per API key: jobs not yet finished, and bytes submitted within one UTC day.
OWNER_RUNNING = (
    "SELECT COUNT(*) AS n FROM jobs WHERE owner = :owner AND status IN ('queued', 'running')"
)
# The daily tally outlives its jobs: deleting or expiring a job does not give its bytes back.
OWNER_BYTES = """SELECT COALESCE(SUM(bytes), 0) AS n FROM recording_usage
    WHERE owner = :owner AND day = :day"""
ADD_USAGE = """INSERT INTO recording_usage (owner, day, bytes) VALUES (:owner, :day, :bytes)
    ON CONFLICT (owner, day) DO UPDATE SET bytes = recording_usage.bytes + excluded.bytes"""

# Cluster-wide chores (retention): the one process whose update lands takes this turn.
TAKE_TURN = """UPDATE chores SET last_run = :now
    WHERE name = :name AND last_run <= :due"""
CHORE = "SELECT name FROM chores WHERE name = :name"
ADD_CHORE = "INSERT INTO chores (name, last_run) VALUES (:name, 0)"


def list_where(
    status: str | None, subject: str | None, session: str | None, owner: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The ``WHERE`` clause of a job listing and its parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    filters = (("status", status), ("subject", subject), ("session", session), ("owner", owner))
    for column, value in filters:
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


LIST_PAGE = (
    "SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"
)
LIST_TOTAL = "SELECT COUNT(*) AS n FROM jobs {where}"


def to_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def insert_params(new: NewJob, now: float) -> dict[str, Any]:
    return {
        "id": new.id,
        "status": JobStatus.QUEUED.value,
        "now": now,
        "model_name": new.model.name,
        "model_version": new.model.version,
        "model_sha256": new.model.sha256,
        "recording": to_json(new.recording.as_dict()),
        "input_kind": new.input_kind,
        "input_path": new.input_path,
        "upload_dir": new.upload_dir,
        "parameters": to_json(new.parameters),
        "subject": new.subject,
        "session": new.session,
        "metadata": to_json(new.metadata),
        "owner": new.owner,
        "recording_bytes": new.recording_bytes,
    }


def renewal(
    job_id: str, token: int, now: float, lease_s: float, progress: Progress | None
) -> tuple[str, dict[str, Any]]:
    """The renewal statement (with progress when given) and its parameters."""
    params: dict[str, Any] = {"id": job_id, "token": token, "now": now, "expires": now + lease_s}
    if progress is None:
        return RENEW.format(progress=""), params
    params.update(
        done=progress.frames_done, total=progress.frames_total, left=progress.seconds_left
    )
    return RENEW.format(progress=RENEW_PROGRESS), params


def finish_params(
    job_id: str,
    token: int,
    now: float,
    recording: RecordingSummary,
    result_files: Collection[str],
) -> dict[str, Any]:
    return {
        "id": job_id,
        "token": token,
        "now": now,
        "recording": to_json(recording.as_dict()),
        "files": to_json(list(result_files)),
        "frames": recording.frames,
    }


def day_params(owner: str, day: datetime.date) -> dict[str, Any]:
    """``owner`` and one UTC day, as the daily tally keys them."""
    return {"owner": owner, "day": day.isoformat()}


def usage_params(new: NewJob, now: float) -> dict[str, Any] | None:
    """What ``create`` adds to the owner's daily tally; None when nothing counts."""
    if new.owner is None or new.recording_bytes <= 0:
        return None
    day = new.usage_day or datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    return {**day_params(new.owner, day), "bytes": new.recording_bytes}


def row_to_job(row: Mapping[str, Any]) -> Job:
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
        owner=row["owner"],
        recording_bytes=row["recording_bytes"],
    )


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def pyformat(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s`` (a literal ``%`` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
