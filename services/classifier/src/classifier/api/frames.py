"""From request to decoded tensor: the upload and decode stages wired to one HTTP request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request
from starlette.requests import ClientDisconnect

from classifier.api.deps import ServiceState
from classifier.core.errors import ClientDisconnectedError, RequestTimeoutError
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
    bytes_in: int
    parse_seconds: float
    decode_seconds: float


async def receive_frames(
    request: Request, service: ServiceState, fields: tuple[str, ...]
) -> tuple[list[UploadedFrame], int]:
    """Stream and parse the multipart body, enforcing the size limits and the body timeout."""
    settings = service.settings
    limits = UploadLimits(
        max_request_bytes=settings.max_request_bytes,
        max_frame_bytes=settings.max_frame_bytes,
        max_parts=settings.max_parts,
    )
    check_declared_length(request.headers.get("content-length"), limits)

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    try:
        async with asyncio.timeout(settings.request_timeout):
            return await parse_upload(
                chunks(), request.headers.get("content-type"), fields=fields, limits=limits
            )
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {settings.request_timeout:g} s"
        ) from None
    except ClientDisconnect:
        raise ClientDisconnectedError from None


async def prepare_sequence(
    request: Request,
    service: ServiceState,
    spec: InputSpec,
    fields: tuple[str, ...],
    check_count: CountCheck,
) -> PreparedSequence:
    """Receive, count-check, decode and stack one sequence; decoding runs off the event loop."""
    started = time.perf_counter()
    frames, received = await receive_frames(request, service, fields)
    check_count(len(frames), spec.frames)
    parsed = time.perf_counter()
    limits = DecodeLimits(max_frame_pixels=service.settings.max_frame_pixels)

    def decode() -> SequenceTensor:
        return build_tensor(decode_frames(frames, spec, limits), spec)

    tensor = await anyio.to_thread.run_sync(decode)
    decoded = time.perf_counter()
    service.metrics.decode.observe(decoded - parsed)
    return PreparedSequence(
        tensor=tensor,
        frames=len(frames),
        bytes_in=received,
        parse_seconds=parsed - started,
        decode_seconds=decoded - parsed,
    )
