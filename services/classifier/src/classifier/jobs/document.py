"""The job document: how a job is shown over HTTP (``GET /v1/jobs/{id}``) and in ``job.json``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

from classifier.jobs.records import Job, JobStatus


class ProgressDocument(TypedDict):
    frames_done: int
    frames_total: int | None
    percent: float | None
    seconds_left: float | None


class ErrorDocument(TypedDict):
    type: str
    message: str


class ModelDocument(TypedDict):
    name: str
    version: str
    sha256: str


class JobDocument(TypedDict):
    id: str
    status: str
    progress: ProgressDocument
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None
    error: ErrorDocument | None
    subject: str | None
    session: str | None
    metadata: dict[str, Any]
    recording: dict[str, Any]
    model: ModelDocument
    parameters: dict[str, Any]
    links: dict[str, str]


def iso_time(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as every time in the API is written."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _optional_time(seconds: float | None) -> str | None:
    return None if seconds is None else iso_time(seconds)


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def _progress(job: Job) -> ProgressDocument:
    done = job.progress.frames_done
    total = job.progress.frames_total
    percent = None
    if total:
        percent = round(min(100.0, 100.0 * done / total), 1)
    seconds_left = job.progress.seconds_left
    if job.status is JobStatus.SUCCEEDED:
        percent, seconds_left = 100.0, 0.0
    elif job.status is not JobStatus.RUNNING:
        seconds_left = None
    return {
        "frames_done": done,
        "frames_total": total,
        "percent": percent,
        "seconds_left": None if seconds_left is None else round(seconds_left, 1),
    }


def job_document(job: Job) -> JobDocument:
    """The job as the contract shows it; ``links`` name every result once the job succeeded."""
    self_path = job_path(job.id)
    links = {"self": self_path}
    if job.status is JobStatus.SUCCEEDED:
        links.update((name, f"{self_path}/{name}") for name in job.result_files)
    error: ErrorDocument | None = None
    if job.error_type is not None:
        error = {"type": job.error_type, "message": job.error_message or ""}
    return {
        "id": job.id,
        "status": job.status.value,
        "progress": _progress(job),
        "created_at": iso_time(job.created_at),
        "started_at": _optional_time(job.started_at),
        "updated_at": iso_time(job.updated_at),
        "finished_at": _optional_time(job.finished_at),
        "error": error,
        "subject": job.subject,
        "session": job.session,
        "metadata": job.metadata,
        "recording": job.recording.as_dict(),
        "model": {"name": job.model.name, "version": job.model.version, "sha256": job.model.sha256},
        "parameters": job.parameters,
        "links": links,
    }
