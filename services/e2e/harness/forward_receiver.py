"""TEST DOUBLE standing in for fluentd: a forward-protocol receiver over real TCP.

This is not fluentd and is never deployed. Development and CI machines have no fluentd binary, so
tests (and ``make test``'s natively started e2e run) point the classifier's log shipping at this
receiver instead. It implements the input side of the Fluentd Forward Protocol v1 over TCP, the
part a client such as fluent-logger exercises:

* Message mode ``[tag, time, record, option?]``;
* Forward mode ``[tag, [[time, record], ...], option?]``;
* PackedForward ``[tag, <bin: concatenated msgpack [time, record] entries>, option?]`` and
  CompressedPackedForward (the same with ``option["compressed"] == "gzip"``, gzip members may be
  concatenated);
* time as an integer, a float, or EventTime (msgpack ext type 0: big-endian uint32 seconds and
  uint32 nanoseconds);
* ``option["chunk"]``: the receiver answers ``{"ack": <chunk>}`` once the entries are stored.

Not implemented: the handshake (shared keys, TLS), UDP heartbeats, the ``size`` option's checks.
A malformed stream closes that connection (as fluentd does); the receiver keeps serving and
remembers the error in :attr:`ForwardReceiver.protocol_errors`.

Received records are kept in memory (:attr:`ForwardReceiver.records`, a list of
:class:`ReceivedRecord` ``(tag, time, record)`` in arrival order) and tests wait for them with
:meth:`ForwardReceiver.wait_for`. For failure tests the receiver can *stall*
(:meth:`ForwardReceiver.stall`): connections are still accepted but nothing is read from them, so a
client's socket buffers fill and its sends block, as with a wedged fluentd. ``start`` and ``stop``
may alternate, and a restart listens on the same port.

File output (``log_dir``), read by the e2e suite
-----------------------------------------------
With ``log_dir`` set, records are also appended to files laid out as the logs service's
``services/logs/fluent.conf`` lays out its volume, so one reader serves both::

    <log_dir>/classifier.access/YYYYMMDD.log    records tagged classifier.access
    <log_dir>/classifier.app/YYYYMMDD.log       records tagged classifier.app
    <log_dir>/other/YYYYMMDD.log                any other tag

``YYYYMMDD`` is the event's UTC day. Each line is one compact JSON object (ASCII, no embedded
newlines): the record's own fields, then ``fluent_tag`` (the tag) and ``fluent_time`` (the event
time, UTC, ISO 8601 with milliseconds and a ``Z``), as fluentd's ``<inject>`` with
``tag_key fluent_tag``, ``time_key fluent_time`` and ``time_format %Y-%m-%dT%H:%M:%S.%3NZ``
writes them; those two overwrite record fields of the same name. Lines are written and flushed as
soon as the data that carried them has been read (fluentd flushes about once a second).

Command line (from ``services/e2e``, which must be on ``sys.path``)::

    python -m harness.forward_receiver --host 127.0.0.1 --port 24224 --log-dir DIR

prints one line once listening (with the bound port; ``--port 0`` picks a free one) and runs
until SIGTERM or SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import signal
import struct
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

import msgpack

#: Tags with a folder of their own in the file output; the rest share ``other``.
FILE_OUTPUT_TAGS = ("classifier.access", "classifier.app")


class ReceivedRecord(NamedTuple):
    """One event as the receiver got it: tag, time in seconds since the epoch, and the record."""

    tag: str
    time: float
    record: dict[str, Any]


class ForwardProtocolError(ValueError):
    """The peer sent something that is not a forward-protocol message."""


def _ext_hook(code: int, data: bytes) -> object:
    # EventTime: ext type 0, 8 bytes, seconds and nanoseconds as big-endian uint32.
    if code == 0 and len(data) == 8:
        seconds, nanoseconds = struct.unpack(">II", data)
        return seconds + nanoseconds / 1e9
    return msgpack.ExtType(code, data)


def _new_unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, ext_hook=_ext_hook)


def _event_time(value: object) -> float:
    if value is None:  # some clients leave the time to the receiver
        return time.time()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForwardProtocolError(f"event time is {type(value).__name__}, not a number")
    return float(value)


def _entry(tag: str, entry: object) -> ReceivedRecord:
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        raise ForwardProtocolError("an entry must be [time, record]")
    event_time, record = entry
    if not isinstance(record, dict) or not all(isinstance(key, str) for key in record):
        raise ForwardProtocolError("a record must be a map with string keys")
    return ReceivedRecord(tag, _event_time(event_time), record)


def _unpack_entries(tag: str, payload: bytes) -> list[ReceivedRecord]:
    unpacker = _new_unpacker()
    unpacker.feed(payload)
    entries = [_entry(tag, entry) for entry in unpacker]
    if unpacker.tell() != len(payload):
        raise ForwardProtocolError("packed entries end with a truncated entry")
    return entries


def parse_message(message: object) -> tuple[list[ReceivedRecord], str | None]:
    """Decode one forward-protocol message into its records and the chunk id to acknowledge."""
    if not isinstance(message, list | tuple) or not 2 <= len(message) <= 4:
        raise ForwardProtocolError("a message must be an array of 2 to 4 elements")
    tag = message[0]
    if not isinstance(tag, str):
        raise ForwardProtocolError("the tag must be a string")
    body = message[1]
    if isinstance(body, list | tuple):  # Forward mode
        if len(message) > 3:
            raise ForwardProtocolError("forward mode takes [tag, entries, option?]")
        option = message[2] if len(message) == 3 else None
        records = [_entry(tag, entry) for entry in body]
    elif isinstance(body, bytes):  # PackedForward, CompressedPackedForward
        if len(message) > 3:
            raise ForwardProtocolError("packed forward mode takes [tag, entries, option?]")
        option = message[2] if len(message) == 3 else None
        compressed = option.get("compressed") if isinstance(option, dict) else None
        if compressed not in (None, "text", "gzip"):
            raise ForwardProtocolError(f"unknown compression {compressed!r}")
        payload = gzip.decompress(body) if compressed == "gzip" else body
        records = _unpack_entries(tag, payload)
    else:  # Message mode
        if len(message) < 3:
            raise ForwardProtocolError("message mode takes [tag, time, record, option?]")
        option = message[3] if len(message) == 4 else None
        records = [_entry(tag, (body, message[2]))]
    if option is not None and not isinstance(option, dict):
        raise ForwardProtocolError("the option must be a map")
    chunk = option.get("chunk") if option else None
    if chunk is not None and not isinstance(chunk, str):
        raise ForwardProtocolError("the chunk option must be a string")
    return records, chunk


def format_time(seconds: float) -> str:
    """Render an event time as ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


def format_line(received: ReceivedRecord) -> str:
    """One line of the file output: the record's fields, then ``fluent_tag`` and ``fluent_time``."""
    line: dict[str, Any] = dict(received.record)
    line["fluent_tag"] = received.tag
    line["fluent_time"] = format_time(received.time)
    return json.dumps(line, separators=(",", ":"), default=_json_default)


class _FileOutput:
    """Append-only JSON-lines files in fluent.conf's layout, flushed after every batch."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[Path, IO[str]] = {}

    def path_for(self, tag: str, seconds: float) -> Path:
        folder = tag if tag in FILE_OUTPUT_TAGS else "other"
        day = datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%d")
        return self._directory / folder / f"{day}.log"

    def write(self, records: Sequence[ReceivedRecord]) -> None:
        touched: set[Path] = set()
        for received in records:
            path = self.path_for(received.tag, received.time)
            handle = self._files.get(path)
            if handle is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = self._files[path] = path.open("a", encoding="utf-8")
            handle.write(format_line(received) + "\n")
            touched.add(path)
        for path in touched:
            self._files[path].flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class _ForwardConnection(asyncio.Protocol):
    """One client connection: feeds bytes to a streaming msgpack decoder."""

    def __init__(self, receiver: ForwardReceiver) -> None:
        self._receiver = receiver
        self._unpacker = _new_unpacker()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._receiver._connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._receiver._connection_lost(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._unpacker.feed(data)
        try:
            for message in self._unpacker:
                records, chunk = parse_message(message)
                self._receiver._store(records)
                if chunk is not None:
                    self.transport.write(msgpack.packb({"ack": chunk}))
        except Exception as exc:  # any undecodable input: drop this connection, keep serving
            self._receiver.protocol_errors.append(f"{type(exc).__name__}: {exc}")
            self.transport.close()


class ForwardReceiver:
    """A fluentd stand-in for tests: accepts forward-protocol records on ``host:port`` (TCP).

    ``port=0`` binds a free port; :attr:`port` then tells which, and later restarts reuse it.
    Use as ``async with ForwardReceiver() as receiver:`` or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, log_dir: Path | None = None
    ) -> None:
        self.host = host
        self._port = port
        self.records: list[ReceivedRecord] = []
        self.protocol_errors: list[str] = []
        self._files = _FileOutput(log_dir) if log_dir is not None else None
        self._server: asyncio.Server | None = None
        self._connections: set[_ForwardConnection] = set()
        self._stalled = False
        self._arrived = asyncio.Event()

    @property
    def port(self) -> int:
        """The TCP port: the one bound, once started."""
        return self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def stalled(self) -> bool:
        return self._stalled

    def log_path(self, tag: str, at: float | None = None) -> Path:
        """The file that records tagged ``tag`` at ``at`` (default: now) go to."""
        if self._files is None:
            raise RuntimeError("this receiver has no log_dir")
        return self._files.path_for(tag, time.time() if at is None else at)

    async def start(self) -> None:
        """Listen (again) on the configured port, or the one bound by the first start."""
        if self._server is not None:
            raise RuntimeError("the receiver is already listening")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ForwardConnection(self), self.host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection (records already received are kept)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()
        if self._files is not None:
            self._files.close()

    def stall(self) -> None:
        """Keep accepting connections but stop reading from any of them."""
        self._stalled = True
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.pause_reading()

    def resume(self) -> None:
        """Read again from every connection, stalled ones included."""
        self._stalled = False
        for connection in self._connections:
            if connection.transport is not None and not connection.transport.is_closing():
                connection.transport.resume_reading()

    def clear(self) -> None:
        """Forget the records received so far (files are left as they are)."""
        self.records.clear()

    def by_tag(self, tag: str) -> list[ReceivedRecord]:
        return [received for received in self.records if received.tag == tag]

    async def wait_for(
        self,
        predicate: Callable[[ReceivedRecord], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline per call reads best in tests
        *,
        count: int = 1,
    ) -> list[ReceivedRecord]:
        """Wait until ``count`` received records satisfy ``predicate``; return all that do.

        Raises ``TimeoutError`` (saying how many matched) when ``timeout`` seconds pass first.
        """
        matches: list[ReceivedRecord] = []
        scanned = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    arrived = self._arrived
                    matches.extend(r for r in self.records[scanned:] if predicate(r))
                    scanned = len(self.records)
                    if len(matches) >= count:
                        return matches
                    await arrived.wait()
        except TimeoutError:
            raise TimeoutError(
                f"{len(matches)} of {count} wanted records arrived within {timeout} s "
                f"({len(self.records)} received in all)"
            ) from None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- called by the connections ----------------------------------------------------------

    def _connection_made(self, connection: _ForwardConnection) -> None:
        self._connections.add(connection)
        if self._stalled and connection.transport is not None:
            connection.transport.pause_reading()

    def _connection_lost(self, connection: _ForwardConnection) -> None:
        self._connections.discard(connection)

    def _store(self, records: list[ReceivedRecord]) -> None:
        if not records:
            return
        self.records.extend(records)
        if self._files is not None:
            self._files.write(records)
        # Wake every waiter, then give later waiters a fresh event to sleep on.
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()


async def _serve(host: str, port: int, log_dir: Path | None) -> int:
    receiver = ForwardReceiver(host, port, log_dir=log_dir)
    await receiver.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    where = f", writing JSON lines to {log_dir}" if log_dir is not None else ""
    print(
        f"forward receiver (test double for fluentd) listening on {host}:{receiver.port}{where}",
        flush=True,
    )
    try:
        await stopping.wait()
    finally:
        await receiver.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.forward_receiver",
        description="Fluentd forward-protocol receiver: a test double for fluentd.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=24224, help="TCP port (0: pick a free one)")
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="write JSON lines here, laid out as fluent.conf"
    )
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args.host, args.port, args.log_dir))


if __name__ == "__main__":
    raise SystemExit(main())
