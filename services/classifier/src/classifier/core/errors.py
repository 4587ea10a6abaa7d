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


# --- start-up: the operator's errors, never a request's (no HTTP status) ----------------------


class ManifestError(Exception):
    """The manifest is missing, unreadable or inconsistent; the message is one clear line."""


class ModelLoadError(Exception):
    """The model cannot be served; the message is one clear line for the operator."""
