"""Domain errors: what can go wrong with a request, independent of HTTP.

Each request error carries the HTTP status it maps to; ``api/errors.py`` renders them in the
format of the route family that raised them (problem details, OIP ``{"error"}``, or the seed's
``{"error"}``). The start-up errors at the end stop the service instead.
"""

from __future__ import annotations


class ClassifierError(Exception):
    """Base of every error a client can cause; ``detail`` is safe to show to that client."""

    status_code = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str] | None:
        """Response headers this error needs (a challenge, ``Retry-After``), if any."""
        return None


class BadUploadError(ClassifierError):
    """The body is multipart but malformed, or lacks what the route needs."""

    title = "Malformed upload"
    slug = "malformed-upload"


class NotMultipartError(ClassifierError):
    status_code = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class FrameCountError(ClassifierError):
    """The upload holds a number of frames other than the model's sequence length."""

    status_code = 422
    title = "Wrong number of frames"
    slug = "wrong-frame-count"


class SeedFrameCountError(FrameCountError):
    """``/predict``'s wrong count: the seed answered it with 400, where /v1 answers 422."""

    status_code = 400


class UndecodableFrameError(ClassifierError):
    status_code = 422
    title = "Undecodable frame"
    slug = "undecodable-frame"


class UnsupportedFrameFormatError(ClassifierError):
    status_code = 415
    title = "Unsupported image format"
    slug = "unsupported-image-format"


class UnsupportedContentEncodingError(ClassifierError):
    """An OIP body in a Content-Encoding other than gzip, deflate or identity."""

    status_code = 415
    title = "Unsupported content encoding"
    slug = "unsupported-content-encoding"


class ContentTooLargeError(ClassifierError):
    """Bytes, pixels or parts over a configured limit."""

    status_code = 413
    title = "Content too large"
    slug = "content-too-large"


class RequestTimeoutError(ClassifierError):
    status_code = 408
    title = "Request timeout"
    slug = "request-timeout"


class ModelNotFoundError(ClassifierError):
    status_code = 404
    title = "Model not found"
    slug = "model-not-found"


class InvalidTensorError(ClassifierError):
    """An Open Inference Protocol request whose tensors are malformed or mis-shaped."""

    title = "Invalid inference request"
    slug = "invalid-inference-request"


class NotReadyError(ClassifierError):
    status_code = 503
    title = "Not ready"
    slug = "not-ready"


class ClientDisconnectedError(Exception):
    """The client went away mid-upload; nothing is sent back, the event is logged."""


# --- recordings: what can be wrong with a whole video or image sequence ----------------------


class RecordingError(ClassifierError):
    """A recording that cannot be analysed. ``type`` is the short snake_case name a failed job
    reports as ``error.type``; ``status_code`` applies where the error is found at submit."""

    status_code = 422
    title = "Unusable recording"
    slug = "unusable-recording"
    type = "recording_error"


class NotAVideoError(RecordingError):
    """The file's own bytes are no video container FFmpeg can open (whatever it was labelled)."""

    status_code = 415
    title = "Not a video"
    slug = "not-a-video"
    type = "not_a_video"


class UnsupportedCodecError(RecordingError):
    """A container FFmpeg opens, but whose video stream (or frame image format) it cannot decode."""

    status_code = 415
    title = "Unsupported codec"
    slug = "unsupported-codec"
    type = "unsupported_codec"


class TooFewFramesError(RecordingError):
    """Fewer frames than one window of the model's sequence length."""

    title = "Too few frames"
    slug = "too-few-frames"
    type = "too_few_frames"

    def __init__(self, frames: int, window: int) -> None:
        super().__init__(
            f"the recording has {frames} frame(s), fewer than one window of the model's "
            f"{window} frames"
        )
        self.frames = frames
        self.window = window


class MixedFrameSizesError(RecordingError):
    """An image sequence whose frames are not all the size of its first frame."""

    title = "Frames of mixed sizes"
    slug = "mixed-frame-sizes"
    type = "mixed_frame_sizes"


class CorruptRecordingError(RecordingError):
    """Decoding failed part-way; the message names the frame where it stopped."""

    title = "Corrupt recording"
    slug = "corrupt-recording"
    type = "corrupt_recording"


class NoDecodableFramesError(RecordingError):
    """A recording that opened but yielded no frame at all."""

    title = "No decodable frames"
    slug = "no-decodable-frames"
    type = "no_decodable_frames"


class FrameTooLargeError(RecordingError):
    """A recording whose frames have more pixels than the configured limit."""

    status_code = 413
    title = "Frame too large"
    slug = "frame-too-large"
    type = "frame_too_large"


class InvalidAnalysisParametersError(RecordingError):
    """Parameters that do not fit the model: a stride above its window, an unknown label."""

    title = "Invalid analysis parameters"
    slug = "invalid-analysis-parameters"
    type = "invalid_parameters"


class AnalysisCancelledError(RecordingError):
    """The analysis was asked to stop; raised between chunks of frames."""

    status_code = 409
    title = "Analysis cancelled"
    slug = "analysis-cancelled"
    type = "cancelled"


# --- jobs: recordings submitted for analysis, and the jobs that analyse them -----------------


class InvalidRecordingRequestError(ClassifierError):
    """A recording submission whose fields (fps, stride, metadata, ...) are unusable."""

    status_code = 422
    title = "Invalid recording submission"
    slug = "invalid-recording-submission"


class ImportPathForbiddenError(ClassifierError):
    """A ``path`` submission while importing is off, or one that resolves outside the folder."""

    status_code = 403
    title = "Path not importable"
    slug = "path-not-importable"


class InsufficientStorageError(ClassifierError):
    """The data folder has no room for the upload."""

    status_code = 507
    title = "Insufficient storage"
    slug = "insufficient-storage"


class JobNotFoundError(ClassifierError):
    status_code = 404
    title = "Job not found"
    slug = "job-not-found"


class ResultNotFoundError(ClassifierError):
    status_code = 404
    title = "Result not found"
    slug = "result-not-found"


class JobStateError(ClassifierError):
    """What was asked does not fit the job's status (a result before success, a second cancel)."""

    status_code = 409
    title = "Job state conflict"
    slug = "job-state-conflict"


# --- access: API keys and per-key limits (classifier/security) ----------------------


class JobStoreUnavailableError(ClassifierError):
    """The job database cannot be reached (PostgreSQL restarting, the network away): the job
    routes answer 503 and ask the client to come back; clip classification is unaffected."""

    status_code = 503
    title = "Job store unavailable"
    slug = "job-store-unavailable"
    retry_after = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ApiKeyRequiredError(ClassifierError):
    """A protected route reached without a key, or with one that is unknown or revoked."""

    status_code = 401
    title = "API key required"
    slug = "api-key-required"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        #: ``missing``, ``invalid`` or ``revoked``: for the access record, never the key itself.
        self.reason = reason

    def headers(self) -> dict[str, str]:
        # RFC 6750: a challenge always; ``error="invalid_token"`` when a key was sent but refused.
        challenge = 'Bearer realm="image-sequence-classifier"'
        if self.reason != "missing":
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


class LimitExceededError(ClassifierError):
    """A key is over one of its limits (requests per second, running jobs, bytes per day)."""

    status_code = 429
    title = "Limit exceeded"
    slug = "limit-exceeded"

    def __init__(self, detail: str, *, limit: str, retry_after: int) -> None:
        super().__init__(detail)
        self.limit = limit
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# --- start-up: the operator's errors, never a request's (no HTTP status) ----------------------


class ManifestError(Exception):
    """The manifest is missing, unreadable or inconsistent; the message is one clear line."""


class ModelLoadError(Exception):
    """The model cannot be served; the message is one clear line for the operator."""


class KeysFileError(Exception):
    """The API keys file cannot be read or parsed (an operator's mistake, not a client's)."""


class DataDirError(Exception):
    """The data folder cannot be used; the message is one clear line for the operator."""
