"""Stage 1, parse upload: stream a multipart body into in-memory frames, enforcing every limit.

Frames are kept in memory (the request-size limit bounds them), so an aborted upload leaves no
temporary files behind. Limits are checked while the body streams in, before it is all read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from classifier.core.errors import BadUploadError, ContentTooLargeError, NotMultipartError


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_request_bytes: int
    max_frame_bytes: int
    max_parts: int


@dataclass(frozen=True, slots=True)
class UploadedFrame:
    """One file part: its position among the frames, its client-given name and its bytes."""

    index: int
    filename: str
    content_type: str | None
    data: bytes


@dataclass(slots=True)
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data body, or a NotMultipartError / BadUploadError."""
    mime, params = parse_options_header(content_type or "")
    if mime != b"multipart/form-data":
        shown = mime.decode("latin-1") or "none"
        raise NotMultipartError(f"expected a multipart/form-data body, got content type {shown!r}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUploadError("the multipart/form-data content type has no boundary parameter")
    return boundary


class FrameCollector:
    """Callbacks for python-multipart that gather the file parts of the named fields."""

    def __init__(self, fields: tuple[str, ...], limits: UploadLimits) -> None:
        self.fields = fields
        self.limits = limits
        self.frames: list[UploadedFrame] = []
        self.parts = 0
        self.finished = False
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    # python-multipart calls these synchronously from MultipartParser.write().
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise ContentTooLargeError(
                f"the upload has more than {self.limits.max_parts} parts (limit max_parts)"
            )
        self._part = _Part()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in params:
            raise BadUploadError(
                f"part {self.parts} has no Content-Disposition: form-data header with a name"
            )
        self._part.name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            self._part.filename = params[b"filename"].decode("utf-8", "replace")
        if b"content-type" in self._headers:
            self._part.content_type = self._headers[b"content-type"].decode("latin-1")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.name not in self.fields:
            return  # other fields are counted as parts but not kept
        part.size += end - start
        if part.size > self.limits.max_frame_bytes:
            index = len(self.frames)
            raise ContentTooLargeError(
                f"frame {index} ({part.filename or 'unnamed'}) is larger than "
                f"{self.limits.max_frame_bytes} bytes (limit max_frame_bytes)"
            )
        part.chunks.append(data[start:end])

    def on_part_end(self) -> None:
        part = self._part
        if part.name in self.fields:
            index = len(self.frames)
            self.frames.append(
                UploadedFrame(
                    index=index,
                    filename=part.filename or f"frame-{index}",
                    content_type=part.content_type,
                    data=b"".join(part.chunks),
                )
            )

    def on_end(self) -> None:
        self.finished = True


def check_declared_length(content_length: str | None, limits: UploadLimits) -> None:
    """Refuse from the header alone a body that declares itself too large."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BadUploadError(f"Content-Length {content_length!r} is not a number") from None
    if declared > limits.max_request_bytes:
        raise ContentTooLargeError(
            f"the request body is {declared} bytes, above the limit of "
            f"{limits.max_request_bytes} bytes (limit max_request_bytes)"
        )


async def parse_upload(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    *,
    fields: tuple[str, ...],
    limits: UploadLimits,
) -> tuple[list[UploadedFrame], int]:
    """Parse a multipart body as it streams in; return the frames found and the bytes read."""
    boundary = multipart_boundary(content_type)
    collector = FrameCollector(fields, limits)
    try:
        parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": collector.on_part_begin,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_end": collector.on_end,
            },
        )
    except ValueError as exc:  # python-multipart rejects over-long boundaries this way
        raise BadUploadError(f"invalid multipart boundary: {exc}") from None
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limits.max_request_bytes:
            raise ContentTooLargeError(
                f"the request body is larger than {limits.max_request_bytes} bytes "
                "(limit max_request_bytes)"
            )
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise BadUploadError(f"malformed multipart body: {exc}") from None
    if not collector.finished:
        raise BadUploadError("the multipart body ends before its closing boundary")
    return collector.frames, received
