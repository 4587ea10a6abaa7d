"""From request to decoded tensor: the upload and decode stages wired to one HTTP request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request
from starlette.requests import ClientDisconnect

from classifier.api.deps import ServiceState
from classifier.core.config import Settings
from classifier.core.errors import (
    ClientDisconnectedError,
    ContentTooLargeError,
    RequestTimeoutError,
)
from classifier.model.manifest import InputSpec
from classifier.pipeline.decode import DecodeLimits, decode_frames
from classifier.pipeline.tensor import SequenceTensor, build_tensor
from classifier.pipeline.upload import (
    UploadedFrame,
    UploadLimits,
    check_declared_length,
    parse_upload,
)

#: Raises the route's own error when ``received`` frames differ from ``expected``.
CountCheck = Callable[[int, int], None]


def multipart_openapi(field: str, description: str) -> dict[str, object]:
    """OpenAPI for a multipart body of files, so /docs offers a working file picker."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [field],
                        "properties": {
                            field: {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": description,
                            }
                        },
                    }
                }
            },
        }
    }


@dataclass(frozen=True, slots=True)
class PreparedSequence:
    tensor: SequenceTensor
    frames: int
    parse_seconds: float
    decode_seconds: float


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(
        max_request_bytes=settings.max_request_bytes,
        max_frame_bytes=settings.max_frame_bytes,
        max_parts=settings.max_parts,
    )


@asynccontextmanager
async def receiving_body(
    request: Request, settings: Settings
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The body's chunks, within the request-size limit's header check and the body timeout.

    A body that declares itself too large is refused before a byte is read; one that stalls
    past ``request_timeout`` is a 408; a client gone mid-body ends the request quietly.
    """
    check_declared_length(request.headers.get("content-length"), upload_limits(settings))
    try:
        async with asyncio.timeout(settings.request_timeout):
            yield request.stream()
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {settings.request_timeout:g} s"
        ) from None
    except ClientDisconnect:
        raise ClientDisconnectedError from None


async def read_body(request: Request, settings: Settings) -> bytes:
    """The whole body, refused once it passes ``max_request_bytes`` while streaming."""
    limit = settings.max_request_bytes
    chunks: list[bytes] = []
    received = 0
    async with receiving_body(request, settings) as stream:
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                raise ContentTooLargeError(
                    f"the request body is larger than {limit} bytes (limit max_request_bytes)"
                )
            chunks.append(chunk)
    return b"".join(chunks)


async def receive_frames(
    request: Request, service: ServiceState, fields: tuple[str, ...]
) -> tuple[list[UploadedFrame], int]:
    """Stream and parse the multipart body, enforcing the size limits and the body timeout."""
    settings = service.settings
    async with receiving_body(request, settings) as stream:
        return await parse_upload(
            stream,
            request.headers.get("content-type"),
            fields=fields,
            limits=upload_limits(settings),
        )


async def prepare_sequence(
    request: Request,
    service: ServiceState,
    spec: InputSpec,
    fields: tuple[str, ...],
    check_count: CountCheck,
) -> PreparedSequence:
    """Receive, count-check, decode and stack one sequence.

    Decoding runs in a worker thread, so large uploads never stall the event loop; an upload no
    larger than ``inline_decode_bytes`` decodes in about a millisecond, less than the thread
    hand-off and GIL ping-pong cost it, and decodes on the loop.
    """
    started = time.perf_counter()
    frames, received = await receive_frames(request, service, fields)
    check_count(len(frames), spec.frames)
    parsed = time.perf_counter()
    limits = DecodeLimits(max_frame_pixels=service.settings.max_frame_pixels)

    def decode() -> SequenceTensor:
        return build_tensor(decode_frames(frames, spec, limits), spec)

    if received <= service.settings.inline_decode_bytes:
        tensor = decode()
    else:
        tensor = await anyio.to_thread.run_sync(decode)
    decoded = time.perf_counter()
    service.metrics.decode.observe(decoded - parsed)
    return PreparedSequence(
        tensor=tensor,
        frames=len(frames),
        parse_seconds=parsed - started,
        decode_seconds=decoded - parsed,
    )
