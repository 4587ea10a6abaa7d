"""From request to decoded tensor: the upload and decode stages wired to one HTTP request."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request

from classifier.api.body import BodyLimits, body_chunks, check_declared_length
from classifier.api.deps import ServiceState
from classifier.core.config import Settings
from classifier.model.manifest import InputSpec
from classifier.pipeline.decode import DecodeLimits, decode_frames
from classifier.pipeline.tensor import SequenceTensor, build_tensor
from classifier.pipeline.upload import UploadedFrame, UploadLimits, parse_upload

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


def clip_body_limits(settings: Settings) -> BodyLimits:
    """A clip's body (multipart frames or OIP tensors): ``max_request_bytes``, and the whole
    body within ``request_timeout``."""
    return BodyLimits(
        max_bytes=settings.max_request_bytes,
        limit_name="max_request_bytes",
        deadline_s=settings.request_timeout,
        idle_timeout_s=None,
    )


async def receive_frames(
    request: Request, service: ServiceState, fields: tuple[str, ...]
) -> tuple[list[UploadedFrame], int]:
    """Stream and parse the multipart body, within the size limits and the body's deadline."""
    settings = service.settings
    limits = clip_body_limits(settings)
    # body_chunks checks Content-Length on its first read; checked here too, before the content
    # type, so a body declared too large is a 413 whatever else is wrong with it.
    check_declared_length(request.headers.get("content-length"), limits)
    async with aclosing(body_chunks(request, limits)) as chunks:
        return await parse_upload(
            chunks,
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
