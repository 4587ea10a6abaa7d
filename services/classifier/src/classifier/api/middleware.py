"""Per-request plumbing around every route: request id, key check, admission, metrics, access log.

A plain ASGI middleware (not ``BaseHTTPMiddleware``) so bodies stream through untouched and a
request costs one function call here, not an extra task.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier.api.access import ACCESS_STATE_KEY, CLIENT_CLOSED_REQUEST, AccessRecord
from classifier.api.arrival import ARRIVAL_KEY
from classifier.api.errors import domain_error_response, error_response
from classifier.security.auth import KEY_NAME_STATE, REFUSED_STATE

if TYPE_CHECKING:
    from classifier.api.deps import ServiceState

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
        client = scope.get("client")
        record = AccessRecord(
            request_id=request_id,
            method=scope["method"],
            path=scope["path"],
            client=client[0] if client else None,
        )
        # Each request its own state (a shallow copy of the lifespan's), as ASGI servers must give
        # it; not every server does (asgi-lifespan shares one dict), and neither a key's name nor
        # the access record may leak into another request.
        state = scope["state"] = dict(scope.get("state", {}))
        state["request_id"] = request_id
        state[ACCESS_STATE_KEY] = record
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                record.bytes_in += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        if service.access_control is not None:
            # API keys (classifier/security): before admission, before any body is read.
            refusal = service.access_control.check(scope)
            record.api_key = state.get(KEY_NAME_STATE)  # the key's name, never the key
            record.refused = state.get(REFUSED_STATE)
            if refusal is not None:
                response = domain_error_response(scope["path"], refusal, request_id)
                await response(scope, receive, send_with_id)
                self._finish(scope, record, start)
                return

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
                record.shed = shed
                await response(scope, receive, send_with_id)
                self._finish(scope, record, start)
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
                record.shed = "uploads"
                await response(scope, receive, send_with_id)
                self._finish(scope, record, start)
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
            record.error = type(exc).__name__
            if service.logs is not None:
                service.logs.app(
                    "unhandled_error",
                    level="error",
                    request_id=request_id,
                    exception=type(exc).__name__,
                    path=scope["path"],
                )
            if record.status == CLIENT_CLOSED_REQUEST:  # nothing sent yet
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
            self._finish(scope, record, start)

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

    def _finish(self, scope: Scope, record: AccessRecord, start: float) -> None:
        """Count the request in the metrics and emit its access record: the one place it is."""
        duration = time.perf_counter() - start
        route = scope.get("route")
        record.route = getattr(route, "path", None) or "unmatched"
        record.duration_ms = round(duration * 1000, 3)
        metrics = self.service.metrics
        metrics.requests.labels(record.route, record.method, str(record.status)).inc()
        metrics.latency.labels(record.route).observe(duration)
        if self.service.logs is not None:
            self.service.logs.access(record.as_logged())
