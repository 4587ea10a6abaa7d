"""Submit a recording for analysis: ``POST /v1/models/{name}/recordings`` answers 202 and a job.

The body streams to ``<data dir>/uploads/<job id>/`` (``recording_upload``); or a ``path`` field
names a recording already under ``CLASSIFIER_IMPORT_DIR``. Everything that can be judged before
the analysis is judged here, so a bad submission is a 4xx at once rather than a failed job later:
the parameters (as each field arrives), the video's header from its own bytes, an image
sequence's frame count and first frame. Anything that fails removes what was received.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from classifier.api.access import access_record
from classifier.api.body import BodyLimits, body_chunks, check_declared_length
from classifier.api.deps import Jobs, JobsDep, ModelsDep, ServiceDep, ServiceState
from classifier.api.recording_upload import (
    FRAMES_FIELD,
    VIDEO_FIELD,
    ReceivedRecording,
    RecordingUploadLimits,
    StoredFrame,
    frame_spans,
    receive_recording,
)
from classifier.api.schemas import Problem
from classifier.core.config import Settings
from classifier.core.errors import (
    BadUploadError,
    FrameTooLargeError,
    ImportPathForbiddenError,
    InsufficientStorageError,
    InvalidRecordingRequestError,
    LimitExceededError,
    TooFewFramesError,
)
from classifier.jobs.document import job_document, job_path
from classifier.jobs.records import InputKind, Job, ModelSummary, NewJob, RecordingSummary
from classifier.jobs.store import JobStore
from classifier.model.runtime import SequenceModel
from classifier.pipeline.decode import DecodeLimits
from classifier.pipeline.upload import multipart_boundary
from classifier.recordings.analysis import AnalysisParameters
from classifier.recordings.source import ImageSequenceSource, probe_video
from classifier.security.auth import Principal, PrincipalDep
from classifier.security.ownership import (
    check_recording_submission,
    daily_bytes_exceeded,
    job_owner,
)

router = APIRouter(prefix="/v1/models", tags=["recordings"])

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
#: Field names a submission may carry besides its video or frames.
FIELDS = ("path", "fps", "stride", "min_bout_ms", "bin_s", "subject", "session", "metadata")
MAX_LABEL_CHARS = 200
#: Image files taken from an imported folder, by extension (case-insensitive).
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_DIGITS = re.compile(r"(\d+)")


def new_job_id() -> str:
    """32 URL-safe characters from 192 random bits: unguessable, and safe in paths and URLs."""
    return secrets.token_urlsafe(24)


# --- the form fields ---------------------------------------------------------------------------


@dataclass(slots=True)
class Submission:
    """The submission's fields, parsed and checked against the model."""

    path: str | None = None
    fps: float | None = None
    stride: int = 1
    min_bout_ms: float | dict[str, float] | None = None
    bin_s: float | None = None
    subject: str | None = None
    session: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def parameters(self, kind: InputKind) -> dict[str, Any]:
        chosen: dict[str, Any] = {
            "stride": self.stride,
            "min_bout_ms": self.min_bout_ms,
            "bin_s": self.bin_s,
        }
        if kind == "frames":  # a video's frame times come from its timestamps
            chosen["fps"] = self.fps
        return chosen


def _invalid(message: str) -> InvalidRecordingRequestError:
    return InvalidRecordingRequestError(message)


def _positive_number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _invalid(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise _invalid(f"{name} must be a positive number, got {value!r}")
    return number


def _min_bout(value: str, labels: tuple[str, ...]) -> float | dict[str, float]:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _invalid(
            f"min_bout_ms must be a number of milliseconds or a JSON object of label to "
            f"milliseconds, got {value!r}"
        ) from None
    if isinstance(parsed, bool) or not isinstance(parsed, int | float | dict):
        raise _invalid(f"min_bout_ms must be a number or a JSON object, got {value!r}")
    if isinstance(parsed, int | float):
        if not math.isfinite(parsed) or parsed < 0:
            raise _invalid(f"min_bout_ms must be 0 or more, got {value!r}")
        return float(parsed)
    unknown = sorted(set(parsed) - set(labels))
    if unknown:
        raise _invalid(
            f"min_bout_ms names labels the model does not have: {', '.join(unknown)} "
            f"(labels: {', '.join(labels)})"
        )
    result: dict[str, float] = {}
    for label, ms in parsed.items():
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not ms >= 0:
            raise _invalid(f"min_bout_ms for {label!r} must be 0 or more, got {ms!r}")
        result[label] = float(ms)
    return result


def _short_text(name: str, value: str) -> str | None:
    text = value.strip()
    if len(text) > MAX_LABEL_CHARS:
        raise _invalid(f"{name} is longer than {MAX_LABEL_CHARS} characters")
    return text or None


def apply_field(submission: Submission, name: str, value: str, model: SequenceModel) -> None:
    """Check one form field as soon as it arrives, and keep its value."""
    window = model.manifest.input.frames
    if name == "fps":
        submission.fps = _positive_number("fps", value)
    elif name == "stride":
        try:
            stride = int(value)
        except ValueError:
            raise _invalid(f"stride must be a whole number of frames, got {value!r}") from None
        if not 1 <= stride <= window:
            raise _invalid(
                f"stride {stride} is outside 1..{window}: it must be at least 1 and at most "
                f"the model's window of {window} frames"
            )
        submission.stride = stride
    elif name == "min_bout_ms":
        submission.min_bout_ms = _min_bout(value, model.manifest.labels)
    elif name == "bin_s":
        submission.bin_s = _positive_number("bin_s", value)
    elif name in ("subject", "session"):
        setattr(submission, name, _short_text(name, value))
    elif name == "metadata":
        try:
            metadata = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise _invalid(f"metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise _invalid(f"metadata must be a JSON object, got {type(metadata).__name__}")
        submission.metadata = metadata
    elif name == "path":
        submission.path = value.strip() or None
    else:
        raise _invalid(
            f"unknown field {name!r}; a submission takes {VIDEO_FIELD!r} or {FRAMES_FIELD!r} "
            f"files and the fields {', '.join(FIELDS)}"
        )


# --- receiving the body ------------------------------------------------------------------------


def upload_limits(settings: Settings) -> RecordingUploadLimits:
    return RecordingUploadLimits(
        max_bytes=settings.max_recording_bytes,
        max_frames=settings.max_sequence_frames,
        max_frame_bytes=settings.max_sequence_frame_bytes,
        min_free_bytes=settings.min_free_bytes,
    )


def _check_free_space(folder: Path, declared: int, reserve: int) -> None:
    free = shutil.disk_usage(folder).free
    if free - declared < reserve:
        raise InsufficientStorageError(
            f"the data folder has {free} bytes free; this upload of {declared} bytes would "
            f"leave less than the {reserve} bytes it must keep (limit min_free_bytes)"
        )


def body_limits(settings: Settings) -> BodyLimits:
    """No deadline for the whole body (2 GiB over a slow lab network takes its time), only for
    the silence between two chunks."""
    return BodyLimits(
        max_bytes=settings.max_recording_bytes,
        limit_name="max_recording_bytes",
        deadline_s=None,
        idle_timeout_s=settings.upload_idle_timeout,
    )


# --- what the submission points at -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingInput:
    kind: InputKind
    #: The video file, or the frames (stored or imported) in order.
    video: Path | None
    frames: list[StoredFrame]
    filename: str
    sha256: str | None


def _natural_key(name: str) -> list[object]:
    """frame_2.png before frame_10.png, as a person would order them."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name)]


def resolve_import(import_dir: Path | None, raw: str) -> Path:
    """The file or folder ``raw`` names under the import folder, or a 403 when it is outside."""
    if import_dir is None:
        raise ImportPathForbiddenError(
            "submitting by path is off: the service has no import folder (CLASSIFIER_IMPORT_DIR)"
        )
    base = import_dir.resolve()
    candidate = Path(raw)
    if candidate.is_absolute():
        raise ImportPathForbiddenError(
            f"path {raw!r} is absolute; give it relative to the import folder"
        )
    resolved = (base / candidate).resolve()  # follows every symlink, resolves every ..
    if not resolved.is_relative_to(base):
        raise ImportPathForbiddenError(f"path {raw!r} resolves outside the import folder")
    if not resolved.exists():
        raise _invalid(f"path {raw!r}: no such file or folder in the import folder")
    return resolved


def _imported_frames(folder: Path, base: Path) -> list[StoredFrame]:
    frames = []
    for entry in sorted(folder.iterdir(), key=lambda item: _natural_key(item.name)):
        if entry.suffix.lower() not in FRAME_EXTENSIONS:
            continue
        resolved = entry.resolve()
        if not resolved.is_relative_to(base):
            raise ImportPathForbiddenError(
                f"{entry.name} in the folder resolves outside the import folder"
            )
        if resolved.is_file():
            frames.append(StoredFrame(resolved, entry.name))
    return frames


def _imported_input(settings: Settings, raw: str) -> RecordingInput:
    resolved = resolve_import(settings.import_dir, raw)
    assert settings.import_dir is not None
    if resolved.is_dir():
        frames = _imported_frames(resolved, settings.import_dir.resolve())
        return RecordingInput("frames", None, frames, resolved.name, None)
    return RecordingInput("video", resolved, [], resolved.name, None)


def _uploaded_input(received: ReceivedRecording, submission: Submission) -> RecordingInput:
    has_video, has_frames = received.video is not None, bool(received.frames)
    if submission.path is not None and (has_video or has_frames):
        raise _invalid("give either an uploaded recording or a path, not both")
    # Both a video and frames never get here: receive_recording refuses the second kind.
    if received.video is not None:
        return RecordingInput(
            "video", received.video, [], received.video_filename or "recording", received.sha256
        )
    if has_frames:
        return RecordingInput("frames", None, received.frames, "frames", received.sha256)
    raise BadUploadError(
        f"the submission has no recording: send one {VIDEO_FIELD!r} file, {FRAMES_FIELD!r} "
        "files (an image sequence, with fps), or a path field"
    )


def _describe_input(
    source: RecordingInput, submission: Submission, model: SequenceModel, settings: Settings
) -> RecordingSummary:
    """Judge the recording from its own bytes (runs in a worker thread)."""
    limits = DecodeLimits(max_frame_pixels=settings.max_frame_pixels)
    window = model.manifest.input.frames
    if source.kind == "video":
        assert source.video is not None
        info = probe_video(source.video, source.filename)
        if info.width * info.height > limits.max_frame_pixels:
            raise FrameTooLargeError(
                f"{info.filename} is {info.width}x{info.height} pixels a frame, above the "
                f"limit of {limits.max_frame_pixels} pixels (limit max_frame_pixels)"
            )
        return RecordingSummary(
            filename=info.filename,
            fps=info.fps,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            codec=info.codec,
            sha256=source.sha256,
        )
    if submission.fps is None:
        raise _invalid("an image sequence needs fps: the frame rate it was recorded at")
    if len(source.frames) < window:
        raise TooFewFramesError(len(source.frames), window)
    sequence = ImageSequenceSource(
        [frame.path for frame in source.frames],
        [frame.filename for frame in source.frames],
        submission.fps,
        limits=limits,
        name=source.filename,
        spans=frame_spans(source.frames),
    )
    info = sequence.info
    return RecordingSummary(
        filename=info.filename,
        fps=info.fps,
        duration_s=info.duration_s,
        width=info.width,
        height=info.height,
        codec=info.codec,
        sha256=source.sha256,
    )


def _write_frame_list(path: Path, frames: list[StoredFrame]) -> None:
    """frames.json, for the analysis: [path, filename] per frame, plus [offset, size] in the
    pack file for an uploaded sequence (analysis_process.py reads it back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listed = [
        [str(frame.path), frame.filename]
        + ([] if frame.size is None else [frame.offset, frame.size])
        for frame in frames
    ]
    path.write_text(json.dumps(listed), encoding="utf-8")


# --- the per-key quotas ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreQuota:
    """The job store as the ownership policy's ``JobQuota``: its (blocking) counts, each run in
    a worker thread."""

    store: JobStore

    async def running_jobs(self, owner: str) -> int:
        return await anyio.to_thread.run_sync(self.store.running_jobs, owner)

    async def recording_bytes_on(self, owner: str, day: date) -> int:
        return await anyio.to_thread.run_sync(self.store.recording_bytes_on, owner, day)


async def within_allowance(
    chunks: AsyncGenerator[bytes, None], principal: Principal, allowance: int, now: datetime
) -> AsyncIterator[bytes]:
    """``chunks``, refused with the daily-bytes 429 as soon as they pass ``allowance`` (a body
    without a Content-Length, or one whose header understated it)."""
    limit = principal.limits.recording_bytes_per_day
    assert limit is not None  # an allowance exists only under a daily limit
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > allowance:
                raise daily_bytes_exceeded(principal, limit - allowance, received, now)
            yield chunk
    finally:
        await chunks.aclose()


# --- the route ---------------------------------------------------------------------------------


@router.post(
    "/{name}/recordings",
    status_code=202,
    summary="Submit a recording (video or image sequence) for analysis",
    description=(
        "Multipart: one `video` file (MP4/H.264, MOV, AVI, MKV, WebM), or `frames` files in "
        "order with `fps` (an image sequence, any format classify accepts), or a `path` "
        "relative to the server's import folder. Optional fields: `fps`, `stride` (1..window), "
        "`min_bout_ms` (number, or JSON object label -> ms), `bin_s`, `subject`, `session`, "
        "`metadata` (JSON object). Answers 202 with the job document and its `Location`."
    ),
    responses={
        400: {**PROBLEM, "description": "Malformed multipart body, or no recording in it."},
        403: {**PROBLEM, "description": "A path outside the import folder, or import is off."},
        404: {**PROBLEM, "description": "No model of that name."},
        408: {**PROBLEM, "description": "The upload stalled past upload_idle_timeout."},
        413: {**PROBLEM, "description": "Over max_recording_bytes or an image-sequence limit."},
        415: {**PROBLEM, "description": "Not multipart, not a video, or an unsupported codec."},
        422: {**PROBLEM, "description": "A bad field, or fewer frames than one window."},
        429: {
            **PROBLEM,
            "description": "The API key is at its max_running_jobs or over its "
            "recording_bytes_per_day (see Retry-After).",
        },
        503: {**PROBLEM, "description": "Too many uploads at once (see Retry-After)."},
        507: {**PROBLEM, "description": "The data folder has no room for the upload."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            VIDEO_FIELD: {"type": "string", "format": "binary"},
                            FRAMES_FIELD: {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                            **{name: {"type": "string"} for name in FIELDS},
                        },
                    }
                }
            },
        }
    },
)
async def submit_recording(
    request: Request,
    name: Annotated[str, PathParam(description="Model name.", examples=["rodent-behaviour"])],
    models: ModelsDep,
    service: ServiceDep,
    jobs: JobsDep,
    principal: PrincipalDep,
) -> JSONResponse:
    served = models.get(name)
    model = served.model
    settings = service.settings
    boundary = multipart_boundary(request.headers.get("content-type"))
    limits = body_limits(settings)
    header = request.headers.get("content-length")
    check_declared_length(header, limits)
    declared = int(header) if header else 0
    # With keys off (no principal) this is a no-op that never touches the store.
    now = datetime.fromtimestamp(service.wall_clock(), UTC)
    try:
        allowance = await check_recording_submission(
            StoreQuota(jobs.store), principal, int(header) if header else None, now=now
        )
    except LimitExceededError as exc:
        _note_refusal(request, exc)
        raise
    await anyio.to_thread.run_sync(
        _check_free_space, jobs.data.uploads, declared, settings.min_free_bytes
    )
    job_id = new_job_id()
    upload_dir = jobs.data.upload_dir(job_id)
    submission = Submission()
    chunks: AsyncIterator[bytes]
    if allowance is None:
        chunks = body_chunks(request, limits)
    else:
        assert principal is not None  # an allowance is a key's
        chunks = within_allowance(body_chunks(request, limits), principal, allowance, now)
    try:
        received = await receive_recording(
            chunks,
            boundary,
            upload_dir,
            upload_limits(settings),
            on_field=lambda field_name, value: apply_field(submission, field_name, value, model),
        )
        job = await _queue_job(
            service, jobs, model, job_id, received, submission, principal, now.date()
        )
    except BaseException as exc:
        # Synchronous on purpose: a cancelled request (client gone) must still clean up.
        jobs.data.remove_job(job_id)
        if isinstance(exc, LimitExceededError):
            _note_refusal(request, exc)
        raise
    record = access_record(request)
    if record is not None:
        record.job_id = job.id
        record.model = model.name
        record.bytes_stored = received.bytes_received
    if service.logs is not None:
        service.logs.app(
            "job_queued",
            job_id=job.id,
            model=model.name,
            filename=job.recording.filename,
            kind=job.input_kind,
            frames=len(received.frames) or None,
            bytes=received.bytes_received,
            subject=job.subject,
            session=job.session,
        )
    if jobs.runner is not None:
        jobs.runner.wake()
    return JSONResponse(
        dict(job_document(job)), status_code=202, headers={"Location": job_path(job.id)}
    )


def _note_refusal(request: Request, exc: LimitExceededError) -> None:
    """Name the limit in the access record's ``refused``, as the key check does for ``rps``."""
    record = access_record(request)
    if record is not None:
        record.refused = exc.limit


async def _queue_job(
    service: ServiceState,
    jobs: Jobs,
    model: SequenceModel,
    job_id: str,
    received: ReceivedRecording,
    submission: Submission,
    principal: Principal | None,
    usage_day: date,
) -> Job:
    settings = service.settings
    AnalysisParameters(
        stride=submission.stride, min_bout_ms=submission.min_bout_ms, bin_s=submission.bin_s
    ).validate(model.manifest)
    if submission.path is not None and received.video is None and not received.frames:
        source = await anyio.to_thread.run_sync(_imported_input, settings, submission.path)
        upload_dir = None
    else:
        source = _uploaded_input(received, submission)
        upload_dir = str(jobs.data.upload_dir(job_id))
    summary = await anyio.to_thread.run_sync(_describe_input, source, submission, model, settings)
    if source.kind == "video":
        assert source.video is not None
        input_path = str(source.video)
    else:
        frame_list = jobs.data.job_dir(job_id) / "frames.json"
        await anyio.to_thread.run_sync(_write_frame_list, frame_list, source.frames)
        input_path = str(frame_list)
    manifest = model.manifest
    new = NewJob(
        id=job_id,
        model=ModelSummary(manifest.name, manifest.version, manifest.sha256),
        recording=summary,
        input_kind=source.kind,
        input_path=input_path,
        upload_dir=upload_dir,
        parameters=submission.parameters(source.kind),
        subject=submission.subject,
        session=submission.session,
        metadata=submission.metadata,
        owner=job_owner(principal),
        recording_bytes=received.bytes_received,
        usage_day=usage_day,
    )
    return await anyio.to_thread.run_sync(jobs.store.create, new)
