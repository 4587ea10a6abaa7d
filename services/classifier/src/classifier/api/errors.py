"""The one place where errors become HTTP responses, in the format of each route family.

``/v1`` speaks RFC 9457 problem details, ``/v2`` the Open Inference Protocol's ``{"error"}``,
and the seed-compatible ``/predict`` its original ``{"error"}``.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from classifier.api.access import CLIENT_CLOSED_REQUEST, note_error
from classifier.core.errors import ClassifierError, ClientDisconnectedError

PROBLEM_TYPE_BASE = "https://github.com/image-sequence-classifier/problems/"


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def _uses_problem_details(path: str) -> bool:
    return not (path == "/predict" or path == "/v2" or path.startswith("/v2/"))


def error_response(
    request_path: str,
    *,
    status: int,
    detail: str,
    request_id: str | None,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in the dialect of the route family that ``request_path`` belongs to."""
    if not _uses_problem_details(request_path):
        return JSONResponse({"error": detail}, status_code=status, headers=headers)
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request_path,
    }
    if request_id is not None:
        body["request_id"] = request_id
    return ProblemResponse(body, status_code=status, headers=headers)


def _request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def domain_error_response(
    request_path: str, exc: ClassifierError, request_id: str | None
) -> JSONResponse:
    """A domain error as the route family of ``request_path`` renders it, with its headers."""
    return error_response(
        request_path,
        status=exc.status_code,
        detail=exc.detail,
        request_id=request_id,
        slug=exc.slug,
        title=exc.title,
        headers=exc.headers(),
    )


async def _on_classifier_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClassifierError)
    note_error(request, exc)
    return domain_error_response(request.url.path, exc, _request_id(request))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    note_error(request, exc)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(
        request.url.path,
        status=422,
        detail="; ".join(problems) or "invalid request",
        request_id=_request_id(request),
        slug="invalid-parameters",
        title="Invalid parameters",
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        request.url.path,
        status=exc.status_code,
        detail=str(exc.detail),
        request_id=_request_id(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    # Nobody is left to read an answer; the status is for the access record.
    note_error(request, exc)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnectedError, _on_client_disconnect)
    app.add_exception_handler(ClassifierError, _on_classifier_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
