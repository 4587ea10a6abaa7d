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


# --- access: API keys and per-key limits (classifier/security) ----------------------


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
