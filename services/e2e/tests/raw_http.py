"""HTTP/1.1 over a plain socket, for what a client library will not do: stop in mid-body."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from tests.uploads import MultipartFiles


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class EncodedUpload:
    content_type: str
    body: bytes


def encode_multipart(files: MultipartFiles) -> EncodedUpload:
    """The multipart body httpx would send for ``files``, as bytes."""
    request = httpx.Request("POST", "http://placeholder/", files=files)
    return EncodedUpload(request.headers["content-type"], request.read())


def request_head(method: str, base_url: str, path: str, headers: Mapping[str, str]) -> bytes:
    url = httpx.URL(base_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc.decode('ascii')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@asynccontextmanager
async def connection(
    base_url: str, *, reset_on_close: bool = False
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A TCP connection to the service; closed with FIN, or with RST if ``reset_on_close``."""
    url = httpx.URL(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    reader, writer = await asyncio.open_connection(url.host, port)
    try:
        yield reader, writer
    finally:
        if reset_on_close:
            sock = writer.get_extra_info("socket")
            # Linger on, timeout 0: close() discards unsent data and sends RST, like a crash.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One response with a Content-Length body (all this service sends for errors)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawResponse(status, headers, body)
