"""Stage 1, parse upload: a multipart/form-data body into in-memory frames, within every limit.

The body is received into memory (the request-size limit bounds it) while the size and the
number of parts are checked chunk by chunk, so an oversized body or thousands of tiny parts are
refused before the body has been read. Parts are then cut out with ``bytes.find``, which measured
about eight times faster than a callback parser on 24-frame uploads (docs/benchmarks.md). Nothing
touches the disk, so an aborted upload leaves no temporary files behind.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from python_multipart.multipart import parse_options_header

from classifier.core.errors import BadUploadError, ContentTooLargeError, NotMultipartError

MAX_BOUNDARY_LENGTH = 200  # RFC 2046 allows 70; some clients send a little more
MAX_PART_HEADER_BYTES = 16 * 1024
# The Content-Disposition every common client sends; matched directly because the general
# parser (quoting, RFC 2231) costs about 5 us a part, a tenth of a small frame's decoding.
_PLAIN_VALUE = rb'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?'
_PLAIN_DISPOSITION = re.compile(_PLAIN_VALUE + rb"\Z")
# The whole header block of such a part, with or without a Content-Type line (about half the
# cost of taking the block apart line by line, which shows on a 100,000-frame image sequence).
_PLAIN_PART = re.compile(
    rb"(?i:content-disposition): " + _PLAIN_VALUE + rb"(?:\r\n(?i:content-type):[^\r\n]*)?\Z"
)


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
    data: bytes


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data body, or a NotMultipartError / BadUploadError."""
    mime, params = parse_options_header(content_type or "")
    if mime != b"multipart/form-data":
        shown = mime.decode("latin-1") or "none"
        raise NotMultipartError(f"expected a multipart/form-data body, got content type {shown!r}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUploadError("the multipart/form-data content type has no boundary parameter")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise BadUploadError(f"the multipart boundary is longer than {MAX_BOUNDARY_LENGTH} bytes")
    return boundary


def _too_many_parts(limits: UploadLimits) -> ContentTooLargeError:
    return ContentTooLargeError(
        f"the upload has more than {limits.max_parts} parts (limit max_parts)"
    )


async def receive_body(
    chunks: AsyncIterator[bytes], boundary: bytes, limits: UploadLimits
) -> bytes:
    """Collect the body, refusing it as soon as it passes the size or part-count limit."""
    delimiter = b"\r\n--" + boundary
    body = bytearray()
    delimiters = 0
    scanned = 0  # every delimiter starting before this offset has been counted
    async for chunk in chunks:
        body += chunk
        if len(body) > limits.max_request_bytes:
            raise ContentTooLargeError(
                f"the request body is larger than {limits.max_request_bytes} bytes "
                "(limit max_request_bytes)"
            )
        # Parts are delimited by CRLF--boundary (the first may lack the CRLF, hence the + 1).
        delimiters += body.count(delimiter, scanned)
        scanned = max(scanned, len(body) - len(delimiter) + 1)
        if delimiters > limits.max_parts + 1:
            raise _too_many_parts(limits)
    return bytes(body)


def _nameless_part(number: int) -> BadUploadError:
    return BadUploadError(f"part {number} has no Content-Disposition: form-data header with a name")


def _unclosed_body() -> BadUploadError:
    return BadUploadError("the multipart body ends before its closing boundary")


def _part_headers(block: bytes, number: int) -> tuple[str, str | None]:
    """Name and filename from one part's header block."""
    plain = _PLAIN_PART.match(block)
    if plain is None:
        headers: dict[bytes, bytes] = {}
        for line in block.split(b"\r\n"):
            key, colon, content = line.partition(b":")
            if not colon:
                raise BadUploadError(
                    f"malformed multipart body: part {number} has a bad header line"
                )
            headers[key.strip().lower()] = content.strip()
        value = headers.get(b"content-disposition", b"")
        plain = _PLAIN_DISPOSITION.match(value)
    if plain is not None:
        name, filename = plain.group(1), plain.group(2)
    else:
        disposition, params = parse_options_header(value)
        if disposition != b"form-data" or b"name" not in params:
            raise _nameless_part(number)
        name, filename = params[b"name"], params.get(b"filename")
    return (
        name.decode("utf-8", "replace"),
        None if filename is None else filename.decode("utf-8", "replace"),
    )


def _find_delimiter(body: bytes, delimiter: bytes, start: int) -> int:
    """Offset of the next real delimiter line: CRLF--boundary followed by ``--`` or a CRLF.

    Content that merely contains CRLF--boundary followed by something else stays content.
    """
    while True:
        found = body.find(delimiter, start)
        if found < 0:
            raise _unclosed_body()
        after = found + len(delimiter)
        if body.startswith(b"--", after):
            return found
        line_end = body.find(b"\r\n", after)
        if line_end >= 0 and not body[after:line_end].strip(b" \t"):
            return found
        start = found + 1


def split_frames(
    body: bytes, boundary: bytes, *, fields: tuple[str, ...], limits: UploadLimits
) -> list[UploadedFrame]:
    """Cut the parts out of a complete body; keep those of ``fields`` as frames, in order."""
    delimiter = b"--" + boundary
    next_delimiter = b"\r\n" + delimiter
    if body.startswith(delimiter):
        position = 0
    else:  # a preamble before the first boundary is allowed, and ignored
        position = body.find(next_delimiter)
        if position < 0:
            raise BadUploadError("malformed multipart body: no boundary found")
        position += 2
    frames: list[UploadedFrame] = []
    number = 0
    while True:
        position += len(delimiter)
        if body.startswith(b"--", position):
            return frames  # the closing delimiter; an epilogue after it is ignored
        number += 1
        if number > limits.max_parts:
            raise _too_many_parts(limits)
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise BadUploadError("malformed multipart body: expected a line break after a boundary")
        if body.startswith(b"\r\n", line_end + 2):  # a part with no headers at all
            raise _nameless_part(number)
        headers_end = body.find(b"\r\n\r\n", line_end + 2, line_end + 2 + MAX_PART_HEADER_BYTES)
        if headers_end < 0:
            if body.find(next_delimiter, line_end) < 0:
                raise _unclosed_body()
            raise BadUploadError(f"malformed multipart body: part {number} has no header end")
        name, filename = _part_headers(body[line_end + 2 : headers_end], number)
        content_start = headers_end + 4
        content_end = _find_delimiter(body, next_delimiter, content_start)
        if name in fields:
            index = len(frames)
            if content_end - content_start > limits.max_frame_bytes:
                raise ContentTooLargeError(
                    f"frame {index} ({filename or 'unnamed'}) is larger than "
                    f"{limits.max_frame_bytes} bytes (limit max_frame_bytes)"
                )
            frames.append(
                UploadedFrame(
                    index=index,
                    filename=filename or f"frame-{index}",
                    data=body[content_start:content_end],
                )
            )
        position = content_end + 2


async def parse_upload(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    *,
    fields: tuple[str, ...],
    limits: UploadLimits,
) -> tuple[list[UploadedFrame], int]:
    """Receive and parse a multipart body; return the frames found and the bytes read."""
    boundary = multipart_boundary(content_type)
    body = await receive_body(chunks, boundary, limits)
    return split_frames(body, boundary, fields=fields, limits=limits), len(body)


class PartSink(Protocol):
    """Where :class:`StreamingParts` delivers each part: its start, its bytes, its end."""

    def begin(self, name: str, filename: str | None) -> None: ...

    def data(self, piece: bytes) -> None: ...

    def end(self) -> None: ...


class StreamingParts:
    """The same cutting as :func:`split_frames`, for a body that arrives chunk by chunk.

    A recording's body is too large to hold, so parts are found as the chunks arrive and each
    part's bytes handed on as soon as they cannot be the start of a delimiter. Like
    ``split_frames`` it works with ``bytes.find``: on an image sequence of 108,000 small PNGs
    python-multipart's callback parser cost about four times as much (docs/benchmarks.md).
    Only a delimiter line's few bytes, or one part's headers (bounded by
    ``MAX_PART_HEADER_BYTES``), are ever held back.
    """

    _PREAMBLE, _HEADERS, _DATA, _DONE = range(4)

    def __init__(self, boundary: bytes, sink: PartSink) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._sink = sink
        # A leading CRLF lets the first delimiter be found like every later one.
        self._held = b"\r\n"
        self._state = self._PREAMBLE
        self.parts = 0

    @property
    def finished(self) -> bool:
        """Whether the closing delimiter has been read (an epilogue after it is ignored)."""
        return self._state == self._DONE

    def write(self, chunk: bytes) -> None:
        if self._state == self._DONE:
            return
        buffer = self._held + chunk if self._held else chunk
        position = 0  # everything before it has been dealt with
        delimiter, sink = self._delimiter, self._sink
        while True:
            if self._state == self._HEADERS:
                if buffer.startswith(b"\r\n", position):  # a part with no headers at all
                    raise _nameless_part(self.parts)
                headers_end = buffer.find(b"\r\n\r\n", position)
                held = (len(buffer) if headers_end < 0 else headers_end) - position
                if held > MAX_PART_HEADER_BYTES:
                    raise BadUploadError(
                        f"malformed multipart body: part {self.parts} has no header end within "
                        f"{MAX_PART_HEADER_BYTES} bytes"
                    )
                if headers_end < 0:
                    break
                name, filename = _part_headers(buffer[position:headers_end], self.parts)
                sink.begin(name, filename)
                position = headers_end + 4
                self._state = self._DATA
                continue
            # Preamble or a part's content, up to the next real delimiter line.
            search = position
            while True:
                found = buffer.find(delimiter, search)
                if found < 0:
                    line = None
                    break
                line = self._delimiter_line(buffer, found + len(delimiter))
                if line != 0:  # a delimiter line, or too few bytes yet to tell
                    break
                search = found + 1  # CRLF--boundary inside the content: content after all
            if found < 0 or line is None:
                # Hand on what cannot belong to a delimiter; hold back the rest.
                keep = max(position, len(buffer) - len(delimiter) + 1) if found < 0 else found
                if self._state == self._DATA and keep > position:
                    sink.data(buffer[position:keep])
                position = keep
                break
            if self._state == self._DATA:
                if found > position:
                    sink.data(buffer[position:found])
                sink.end()
            if line < 0:
                self._state = self._DONE
                position = len(buffer)
                break
            self.parts += 1
            position = line
            self._state = self._HEADERS
        self._held = buffer[position:]

    def _delimiter_line(self, buffer: bytes, after: int) -> int | None:
        """After CRLF--boundary: -1 for the closing ``--``, the offset past the line's CRLF
        (transport padding allowed before it), 0 when it is content, None when undecided."""
        if len(buffer) - after < 2:
            return None
        if buffer.startswith(b"--", after):
            return -1
        line_end = buffer.find(b"\r\n", after, after + MAX_PART_HEADER_BYTES)
        if line_end < 0:
            rest = buffer[after : after + MAX_PART_HEADER_BYTES]
            if rest.removesuffix(b"\r").strip(b" \t"):  # a CR alone may be a CRLF's first half
                return 0
            if len(buffer) - after >= MAX_PART_HEADER_BYTES:
                raise BadUploadError("malformed multipart body: a boundary line does not end")
            return None
        return 0 if buffer[after:line_end].strip(b" \t") else line_end + 2

    def close(self) -> None:
        """The body has ended: refuse it unless its closing delimiter was read."""
        if self._state != self._DONE:
            raise _unclosed_body()
