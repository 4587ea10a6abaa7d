"""The body reader against a scripted ASGI client: its size limit, deadline and idle timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from starlette.requests import Request
from starlette.types import Message

from classifier.api.body import BodyLimits, body_chunks, read_body
from classifier.core.errors import (
    BadUploadError,
    ClientDisconnectedError,
    ContentTooLargeError,
    RequestTimeoutError,
)

UNLIMITED = BodyLimits(
    max_bytes=1_000_000, limit_name="max_test_bytes", deadline_s=None, idle_timeout_s=None
)


def _chunk(data: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


class ScriptedClient:
    """An ASGI receive that sends ``messages`` in order, waiting ``pause`` seconds before each,
    then stalls for ever (a client that has gone quiet without closing the connection)."""

    def __init__(self, messages: list[Message], pause: float = 0.0) -> None:
        self.messages = list(messages)
        self.pause = pause
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if not self.messages:
            await asyncio.Event().wait()  # never set: the client sends nothing more
        if self.pause:
            await asyncio.sleep(self.pause)
        return self.messages.pop(0)


def _request(receive: Callable[[], Awaitable[Message]], headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


async def _collect(request: Request, limits: BodyLimits, into: list[bytes]) -> None:
    async for chunk in body_chunks(request, limits):
        into.append(chunk)


async def test_a_client_silent_past_the_idle_timeout_is_a_408_naming_it() -> None:
    client = ScriptedClient([_chunk(b"first")])
    limits = BodyLimits(
        max_bytes=1_000, limit_name="max_recording_bytes", deadline_s=None, idle_timeout_s=0.05
    )
    received: list[bytes] = []

    with pytest.raises(RequestTimeoutError) as caught:
        await _collect(_request(client, {}), limits, received)

    assert caught.value.status_code == 408
    assert caught.value.detail == "the request body stalled: nothing arrived for 0.05 s"
    assert received == [b"first"]  # what came before the silence was delivered


async def test_a_body_trickling_past_its_deadline_is_a_408_though_never_idle() -> None:
    # A chunk every 10 ms for ever: never silent for the 5 s idle timeout, always short of the end.
    trickle = ScriptedClient([_chunk(b"x") for _ in range(10_000)], pause=0.01)
    limits = BodyLimits(max_bytes=1_000_000, limit_name="n", deadline_s=0.1, idle_timeout_s=5.0)
    received: list[bytes] = []

    with pytest.raises(RequestTimeoutError) as caught:
        await _collect(_request(trickle, {}), limits, received)

    assert caught.value.detail == "the request body did not arrive within 0.1 s"
    assert 0 < len(received) < 10_000


async def test_the_deadline_ends_a_stall_that_comes_before_the_idle_timeout() -> None:
    limits = BodyLimits(max_bytes=1_000, limit_name="n", deadline_s=0.05, idle_timeout_s=30.0)

    with pytest.raises(
        RequestTimeoutError, match=r"^the request body did not arrive within 0.05 s$"
    ):
        await read_body(_request(ScriptedClient([]), {}), limits)


async def test_time_the_caller_spends_on_a_chunk_is_not_the_clients_silence() -> None:
    client = ScriptedClient([_chunk(b"a"), _chunk(b"b"), _chunk(b"c", more=False)])
    limits = BodyLimits(max_bytes=1_000, limit_name="n", deadline_s=None, idle_timeout_s=0.02)
    received = []
    async for chunk in body_chunks(_request(client, {}), limits):
        received.append(chunk)
        await asyncio.sleep(0.05)  # e.g. writing the chunk to disk, longer than the idle timeout
    assert received == [b"a", b"b", b"c"]


async def test_read_body_joins_the_chunks_and_skips_empty_ones() -> None:
    client = ScriptedClient([_chunk(b"ab"), _chunk(b""), _chunk(b"cd"), _chunk(b"", more=False)])
    assert await read_body(_request(client, {}), UNLIMITED) == b"abcd"
    assert await read_body(_request(ScriptedClient([_chunk(b"", False)]), {}), UNLIMITED) == b""


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    client = ScriptedClient([_chunk(b"x" * 10, more=False)])
    limits = BodyLimits(
        max_bytes=5, limit_name="max_recording_bytes", deadline_s=None, idle_timeout_s=None
    )

    with pytest.raises(ContentTooLargeError) as caught:
        await read_body(_request(client, {"content-length": "10"}), limits)

    assert caught.value.status_code == 413
    assert caught.value.detail == (
        "the request body is 10 bytes, above the limit of 5 bytes (limit max_recording_bytes)"
    )
    assert client.calls == 0


async def test_a_malformed_declared_length_is_a_400() -> None:
    with pytest.raises(BadUploadError, match=r"^Content-Length 'ten' is not a number$"):
        await read_body(_request(ScriptedClient([]), {"content-length": "ten"}), UNLIMITED)


async def test_a_body_growing_past_the_limit_is_refused_without_the_chunk_that_passes_it() -> None:
    client = ScriptedClient([_chunk(b"abc"), _chunk(b"def"), _chunk(b"g", more=False)])
    limits = BodyLimits(
        max_bytes=5, limit_name="max_request_bytes", deadline_s=None, idle_timeout_s=None
    )
    received: list[bytes] = []

    with pytest.raises(ContentTooLargeError) as caught:
        await _collect(_request(client, {}), limits, received)

    assert caught.value.detail == (
        "the request body is larger than 5 bytes (limit max_request_bytes)"
    )
    assert received == [b"abc"]
    assert client.calls == 2  # refused on the chunk that passed the limit, the rest unread


async def test_a_client_gone_mid_body_is_a_disconnect() -> None:
    client = ScriptedClient([_chunk(b"abc"), {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnectedError):
        await read_body(_request(client, {}), UNLIMITED)
