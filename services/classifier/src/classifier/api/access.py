"""The access record, one per request: the logging contract of tag ``classifier.access``.

The middleware creates it and emits it as the response completes; in between, routes note the
model call (``record_classification``) and error handlers the error (``note_error``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from classifier.model.runtime import SequenceModel
    from classifier.pipeline.answer import Classification

#: Where the request's record lives in the ASGI scope's ``state`` (``request.state.access``).
ACCESS_STATE_KEY = "access"

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client gone before the answer


@dataclass(slots=True)
class AccessRecord:
    """What the access log says of one request. Fields left None are absent from the record."""

    # --- in every record ---
    #: The client's X-Request-ID when it is a sane token, else a fresh one; echoed in the answer.
    request_id: str
    method: str
    path: str
    #: The route's template (``/v1/models/{name}/classify``), or ``unmatched``.
    route: str = "unmatched"
    #: The status sent; 499 when the client left before an answer started.
    status: int = CLIENT_CLOSED_REQUEST
    #: From the request's arrival (as the server stamped it) to the end of the response.
    duration_ms: float = 0.0
    #: Body bytes received from the client.
    bytes_in: int = 0
    # --- when known ---
    #: The client's address.
    client: str | None = None
    #: The model that ran, and its version.
    model: str | None = None
    model_version: str | None = None
    #: Frames classified: the sequence length times the batch size.
    frames: int | None = None
    #: The verdict, when the request classified one sequence.
    label: str | None = None
    confidence: float | None = None
    #: The name of the error that answered the request (``FrameCountError``, ...).
    error: str | None = None
    #: A recording submission: the job it queued, and the upload bytes stored for it.
    job_id: str | None = None
    bytes_stored: int | None = None
    #: With API keys on: the name of the key the request carried, never the key itself.
    api_key: str | None = None
    #: Why the key check refused the request: ``missing``, ``invalid`` or ``revoked`` (a 401),
    #: or the limit it was over, ``rps`` (a 429).
    refused: str | None = None
    #: Why admission control refused the request (``concurrency`` or ``queue``), or ``uploads``
    #: for a recording upload over ``max_concurrent_uploads``.
    shed: str | None = None

    def as_logged(self) -> dict[str, object]:
        """The record as it is written: every field that has a value."""
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }


#: Every field an access record may carry, and those every record carries.
ACCESS_FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(AccessRecord))
ALWAYS_LOGGED: tuple[str, ...] = tuple(
    field.name for field in dataclasses.fields(AccessRecord) if field.default is not None
)


def access_record(request: Request) -> AccessRecord | None:
    """The request's record; None only for an app served without the middleware."""
    record = getattr(request.state, ACCESS_STATE_KEY, None)
    return record if isinstance(record, AccessRecord) else None


def record_classification(
    request: Request, model: SequenceModel, frames: int, verdict: Classification | None
) -> None:
    """Note the request's model call: the model, its version, the frames classified, and the
    label and confidence when there was one verdict."""
    record = access_record(request)
    if record is None:
        return
    record.model = model.name
    record.model_version = model.version
    record.frames = frames
    if verdict is not None:
        record.label = verdict.label
        record.confidence = round(verdict.confidence, 6)


def note_error(request: Request, exc: BaseException) -> None:
    """Note the error that answers the request."""
    record = access_record(request)
    if record is not None:
        record.error = type(exc).__name__
