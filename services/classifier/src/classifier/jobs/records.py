"""What a job is: its status, where its recording lies, its progress, its lease and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

InputKind = Literal["video", "frames"]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """The ``recording`` object of a job document; ``frames`` is known once decoded."""

    filename: str
    frames: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "frames": self.frames,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordingSummary:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True, slots=True)
class NewJob:
    """Everything known about a job when it is submitted."""

    id: str
    model: ModelSummary
    recording: RecordingSummary
    #: ``video``: ``input_path`` is the video file; ``frames``: a JSON list of [path, filename].
    input_kind: InputKind
    input_path: str
    #: The upload folder to delete once the job is finished (None for a ``path`` submission).
    upload_dir: str | None
    parameters: dict[str, Any]
    subject: str | None = None
    session: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The API key (its id) that submitted the job, for per-key quotas; None when keys are off.
    owner: str | None = None
    #: Bytes of recording uploaded for the job (0 for a ``path`` submission).
    recording_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    frames_done: int
    frames_total: int | None
    seconds_left: float | None


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored. Times are seconds since the epoch (UTC)."""

    id: str
    status: JobStatus
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    model: ModelSummary
    recording: RecordingSummary
    input_kind: InputKind
    input_path: str
    upload_dir: str | None
    parameters: dict[str, Any]
    subject: str | None
    session: str | None
    metadata: dict[str, Any]
    progress: Progress
    error_type: str | None
    error_message: str | None
    #: Starts so far; a release at shutdown gives its start back.
    attempts: int
    #: The fencing token of the current (or last) lease; every claim increments it.
    lease_token: int
    lease_owner: str | None
    lease_expires: float | None
    result_files: tuple[str, ...]
    owner: str | None = None
    recording_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this worker now holds, and the token every write about it must carry."""

    job: Job
    token: int


@dataclass(frozen=True, slots=True)
class JobFilters:
    status: JobStatus | None = None
    subject: str | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    total: int
