"""Reading a request body within limits: its size, a deadline for the whole body, and the longest
silence between two chunks, for every route that reads one (multipart clips, OIP tensors, and
recordings streamed to disk).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from classifier.core.errors import (
    BadUploadError,
    ClientDisconnectedError,
    ContentTooLargeError,
    RequestTimeoutError,
)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a body may cost: its bytes, and how long the client may take to send it."""

    #: Above this many bytes the body is refused (413): from Content-Length before a byte is read,
    #: then while it streams.
    max_bytes: int
    #: The setting named in the 413's message, e.g. ``"max_request_bytes"``.
    limit_name: str
    #: Seconds the whole body has to arrive in, from the first read (408 past it); None: no limit.
    deadline_s: float | None
    #: Seconds the client may send nothing while a chunk is awaited (408 past it); None: no limit.
    idle_timeout_s: float | None


def check_declared_length(content_length: str | None, limits: BodyLimits) -> None:
    """Refuse from the header alone a body that declares itself too large."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BadUploadError(f"Content-Length {content_length!r} is not a number") from None
    if declared > limits.max_bytes:
        raise ContentTooLargeError(
            f"the request body is {declared} bytes, above the limit of "
            f"{limits.max_bytes} bytes (limit {limits.limit_name})"
        )


async def body_chunks(request: Request, limits: BodyLimits) -> AsyncGenerator[bytes, None]:
    """The body's chunks as they arrive (never an empty one), within ``limits``.

    A body that declares itself too large is refused before a byte is read, one that grows past
    ``max_bytes`` as soon as it does; one that misses the deadline, or stalls longer than the idle
    timeout, is a RequestTimeoutError (408); a client gone mid-body is a ClientDisconnectedError
    (the request ends quietly, as a 499 in the access record).

    The timeouts bound only the waits for the client: time the caller spends on a chunk before
    asking for the next (writing it to disk, say) is not the client's silence, though it counts
    towards the deadline, which is wall-clock time for the whole body.
    """
    check_declared_length(request.headers.get("content-length"), limits)
    loop = asyncio.get_running_loop()
    deadline = None if limits.deadline_s is None else loop.time() + limits.deadline_s
    stream = request.stream()
    received = 0
    try:
        while True:
            wait_until = deadline
            stalled = False  # whether the idle timeout, not the deadline, ends this wait
            if limits.idle_timeout_s is not None:
                idle_until = loop.time() + limits.idle_timeout_s
                if wait_until is None or idle_until < wait_until:
                    wait_until, stalled = idle_until, True
            try:
                async with asyncio.timeout_at(wait_until):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _timed_out(limits, stalled) from None
            except ClientDisconnect:
                raise ClientDisconnectedError from None
            if not chunk:
                continue
            received += len(chunk)
            if received > limits.max_bytes:
                raise ContentTooLargeError(
                    f"the request body is larger than {limits.max_bytes} bytes "
                    f"(limit {limits.limit_name})"
                )
            yield chunk
    finally:
        await stream.aclose()


def _timed_out(limits: BodyLimits, stalled: bool) -> RequestTimeoutError:
    if stalled:
        return RequestTimeoutError(
            f"the request body stalled: nothing arrived for {limits.idle_timeout_s:g} s"
        )
    return RequestTimeoutError(f"the request body did not arrive within {limits.deadline_s:g} s")


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The whole body, within ``limits`` (see ``body_chunks``)."""
    return b"".join([chunk async for chunk in body_chunks(request, limits)])
