"""Per-request plumbing around every route: request id, admission control, metrics, access log.

A plain ASGI middleware (not ``BaseHTTPMiddleware``) so bodies stream through untouched and a
request costs one function call here, not an extra task.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier.api.arrival import ARRIVAL_KEY
from classifier.api.errors import CLIENT_CLOSED_REQUEST, error_response

if TYPE_CHECKING:
    from classifier.api.deps import ServiceState
    from classifier.model.runtime import SequenceModel
    from classifier.pipeline.answer import Classification

REQUEST_ID_HEADER = b"x-request-id"
# Echo a client's id only when it is a sane token; anything else gets a fresh id.
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")

logger = logging.getLogger("classifier")

# Weight of each request's queue wait in the moving average (a time constant of ~50 requests):
# high enough to notice a standing queue within a few dozen requests, low enough that one slow
# moment (a GC pause, a burst of 50 uploads) does not count as overload.
QUEUE_WAIT_SMOOTHING = 0.02
#: Seconds a refused recording upload is told to wait: uploads last minutes, not milliseconds.
UPLOAD_RETRY_AFTER_S = 5


def _request_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def record_classification(
    request: Request, model: SequenceModel, frames: int, verdict: Classification | None
) -> None:
    """What the request's access record says of its model call: the model, its version, the
    frames classified, and the label and confidence when there was one verdict."""
    access: dict[str, Any] = request.state.access
    access.update(model=model.name, model_version=model.version, frames=frames)
    if verdict is not None:
        access.update(label=verdict.label, confidence=round(verdict.confidence, 6))


_RECORDING_UPLOAD = re.compile(r"^/v1/models/[^/]+/recordings/?$")


def _is_recording_upload(scope: Scope) -> bool:
    """A recording submission: minutes of upload, not a clip request (see ``_is_work``)."""
    return scope["method"] == "POST" and bool(_RECORDING_UPLOAD.match(scope["path"]))


def _is_work(scope: Scope) -> bool:
    """Requests that run the model are admission-controlled; health and metrics never are, and
    neither are recording uploads, which have a concurrency limit of their own."""
    return scope["method"] == "POST" and not _is_recording_upload(scope)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, service: ServiceState) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        now = time.perf_counter()
        # Latency counts from the request's arrival when the server stamped it (see arrival).
        start = scope.get(ARRIVAL_KEY, now)
        request_id = _request_id(scope)
        access: dict[str, Any] = {}
        # A copy: a server (or test client) may hand every request the same lifespan state dict,
        # and one request's id must never become a concurrent request's.
        state = scope["state"] = dict(scope.get("state") or {})
        state["request_id"] = request_id
        state["access"] = access
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = CLIENT_CLOSED_REQUEST
        bytes_in = 0

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        work = _is_work(scope)
        if work:
            shed = self._admission(now - start)
            if shed is not None:
                service.metrics.shed.labels(shed).inc()
                response = error_response(
                    scope["path"],
                    status=503,
                    detail="the service is at capacity; retry shortly",
                    request_id=request_id,
                    slug="overloaded",
                    title="Service overloaded",
                    # Not "Connection: close": closing with the body unread resets the socket,
                    # and a client still sending would lose the 503 (httpx saw ReadError).
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, send_with_id)
                self._finish(scope, request_id, status, start, bytes_in, {"shed": shed})
                return

        upload = not work and _is_recording_upload(scope)
        if upload:
            if service.uploads_in_flight >= service.settings.max_concurrent_uploads:
                service.metrics.shed.labels("uploads").inc()
                response = error_response(
                    scope["path"],
                    status=503,
                    detail=(
                        f"{service.uploads_in_flight} recording uploads are being received "
                        "already (limit max_concurrent_uploads); retry shortly"
                    ),
                    request_id=request_id,
                    slug="too-many-uploads",
                    title="Too many uploads",
                    headers={"Retry-After": str(UPLOAD_RETRY_AFTER_S)},
                )
                await response(scope, receive, send_with_id)
                self._finish(scope, request_id, status, start, bytes_in, {"shed": "uploads"})
                return
            service.uploads_in_flight += 1
            service.metrics.uploads_in_flight.inc()
        if work:
            service.in_flight += 1
            service.metrics.in_flight.inc()
        try:
            await self.app(scope, counting_receive, send_with_id)
        except Exception as exc:
            # Never a bare traceback to the client: a 500 in the route family's format.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            access["error"] = type(exc).__name__
            if service.logs is not None:
                service.logs.app(
                    "unhandled_error",
                    level="error",
                    request_id=request_id,
                    exception=type(exc).__name__,
                    path=scope["path"],
                )
            if status == CLIENT_CLOSED_REQUEST:  # nothing sent yet
                response = error_response(
                    scope["path"],
                    status=500,
                    detail="internal error; the request id identifies it in the logs",
                    request_id=request_id,
                )
                await response(scope, receive, send_with_id)
        finally:
            if work:
                service.in_flight -= 1
                service.metrics.in_flight.dec()
            if upload:
                service.uploads_in_flight -= 1
                service.metrics.uploads_in_flight.dec()
            self._finish(scope, request_id, status, start, bytes_in, access)

    def _admission(self, waited: float) -> str | None:
        """Why this request must be shed (``"concurrency"``, ``"queue"``), or None to admit it.

        The in-flight count bounds what the worker has started; the queue wait catches what it
        has not: requests parsed but still waiting for the event loop (see ``arrival``). A
        request that has already waited past the budget is refused before it costs any work,
        once waiting is sustained (the moving average of waits is past half the budget): under
        overload every request waits, while after a single stall only a few do.
        """
        service = self.service
        settings = service.settings
        service.metrics.queue_wait.observe(waited)
        service.queue_wait_average += QUEUE_WAIT_SMOOTHING * (waited - service.queue_wait_average)
        if service.in_flight >= settings.max_concurrency:
            return "concurrency"
        budget = settings.max_queue_ms / 1000
        if budget and waited > budget and service.queue_wait_average > budget / 2:
            return "queue"
        return None

    def _finish(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        start: float,
        bytes_in: int,
        extra: dict[str, Any],
    ) -> None:
        duration = time.perf_counter() - start
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics = self.service.metrics
        metrics.requests.labels(template, scope["method"], str(status)).inc()
        metrics.latency.labels(template).observe(duration)
        if self.service.logs is None:
            return
        record: dict[str, Any] = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "bytes_in": bytes_in,
        }
        client = scope.get("client")
        if client:
            record["client"] = client[0]
        record.update(extra)
        self.service.logs.access(record)
