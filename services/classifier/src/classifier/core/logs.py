"""Where log records leave the classifier: access records and app events, to fluentd and stdout."""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from queue import Empty, Full
from typing import TYPE_CHECKING, Any, Final

import msgpack
from fluent import asyncsender

if TYPE_CHECKING:
    from classifier.core.config import Settings

TAG_PREFIX: Final = "classifier"
ACCESS_TAG: Final = f"{TAG_PREFIX}.access"
APP_TAG: Final = f"{TAG_PREFIX}.app"

#: Severity ranks of app events; ``level`` keeps events at or above its rank.
LEVELS: Final[Mapping[str, int]] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}

#: Bytes of records fluent-logger holds for retry while fluentd is unreachable (its ``bufmax``);
#: past this the whole held batch is dropped and counted.
PENDING_BYTES_MAX: Final = 64 * 1024

#: How long ``close()`` lets queued records drain before dropping the rest.
CLOSE_DRAIN_SECONDS: Final = 0.8
#: How long ``close()`` then waits for a sender thread whose socket it has cut.
CLOSE_ABORT_SECONDS: Final = 0.2


def _plain(value: object) -> object:
    """Turn what JSON and msgpack cannot carry into a plain value (numbers stay numbers)."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def _finite(value: object) -> object:
    """Replace NaN and infinities, which strict JSON has no words for, by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_line(line: Mapping[str, object]) -> str:
    # ensure_ascii keeps each record on one line even for U+2028 and friends, which some
    # line splitters (Python's str.splitlines among them) treat as line breaks.
    try:
        return json.dumps(line, separators=(",", ":"), default=_plain, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(line), separators=(",", ":"), default=_plain)


def _iso_time(unix_ns: int) -> str:
    seconds, nanoseconds = divmod(unix_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds // 1_000_000:03d}Z"


def _count_packed_records(packed: bytes) -> int:
    """How many forward-protocol messages a buffer of concatenated msgpack packets holds."""
    unpacker = msgpack.Unpacker(raw=True)  # only counting: no need to decode strings
    unpacker.feed(packed)
    return sum(1 for _ in unpacker)


class _BoundedCloseSender(asyncsender.FluentSender):  # type: ignore[misc]  # untyped library
    """fluent-logger's asynchronous sender, with a ``close`` that returns within about a second.

    The library's own ``close`` holds the emit lock while it sends everything still queued, which
    takes one ``timeout`` per record when fluentd is stalled and leaves the records it still held
    for retry uncounted. Everything else (the circular queue, the sender thread, the retry buffer
    and reconnecting on the next send) is the library's.
    """

    # Attributes of the library's classes that this one sets.
    _closed: bool
    pendings: bytes | None

    def close(self, flush: bool = True) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True  # from here on emit() returns False without queueing
        if not flush:
            self._discard_queued()
        self._enqueue_stop()
        self._send_thread.join(CLOSE_DRAIN_SECONDS)
        if self._send_thread.is_alive():
            # Still busy: fluentd is slow or stalled. Drop what is queued and cut the socket so a
            # blocked send fails now instead of at its timeout.
            self._discard_queued()
            sock = self.socket
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._send_thread.join(CLOSE_ABORT_SECONDS)
        if not self._send_thread.is_alive() and self.pendings:
            # Records held for retry that the last attempts could not deliver.
            self._call_buffer_overflow_handler(self.pendings)
            self.pendings = None

    def _discard_queued(self) -> None:
        stop_seen = False
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is asyncsender._TOMBSTONE:
                stop_seen = True
            else:
                self._queue_overflow_handler(item)
        if stop_seen:
            self._queue.put_nowait(asyncsender._TOMBSTONE)

    def _enqueue_stop(self) -> None:
        # Nobody else enqueues once closed, so making room by dropping the oldest always works.
        while True:
            try:
                self._queue.put_nowait(asyncsender._TOMBSTONE)
                return
            except Full:
                with contextlib.suppress(Empty):
                    self._queue_overflow_handler(self._queue.get_nowait())


class LogShipper:
    """Writes access records (``classifier.access``) and app events (``classifier.app``).

    Records are mappings of plain JSON values. They go to fluentd's forward input through
    fluent-logger's asynchronous sender when ``fluentd_host`` is set, and as JSON lines to stdout:
    app events always (when at or above ``level``), access records when ``stdout`` is true.

    Nothing here blocks or raises into the caller. An emit packs the record and puts it on a
    bounded circular queue (the oldest record is dropped when it is full); one sender thread
    writes to fluentd with ``timeout`` on every connect and send. While fluentd is down or stalled
    that thread holds at most :data:`PENDING_BYTES_MAX` bytes for retry and drops the batch past
    that; it reconnects on the next record, so shipping resumes by itself. Every record dropped
    (queue overflow, retry buffer overflow, left undelivered at close, emitted after close, failed
    stdout write) is counted in :attr:`dropped` and reported to ``on_drop`` with the number lost.
    Records are packed as they are: a string value, whatever it contains, stays one string value.

    Safe to call from the event loop and from worker threads at once.
    """

    def __init__(
        self,
        *,
        fluentd_host: str | None,
        fluentd_port: int,
        timeout: float,
        queue_size: int,
        stdout: bool,
        level: str = "info",
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
        self._min_rank = LEVELS[level]
        self._access_to_stdout = stdout
        self._on_drop = on_drop
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._stdout_lock = threading.Lock()
        self._sender: _BoundedCloseSender | None = None
        if fluentd_host:
            self._sender = _BoundedCloseSender(
                TAG_PREFIX,
                host=fluentd_host,
                port=fluentd_port,
                timeout=timeout,
                bufmax=PENDING_BYTES_MAX,
                nanosecond_precision=True,
                msgpack_kwargs={"default": _plain, "unicode_errors": "backslashreplace"},
                queue_maxsize=queue_size,
                queue_circular=True,
                queue_overflow_handler=self._queue_overflowed,
                buffer_overflow_handler=self._retry_buffer_overflowed,
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, on_drop: Callable[[int], None] | None = None
    ) -> LogShipper:
        return cls(
            fluentd_host=settings.fluentd_host,
            fluentd_port=settings.fluentd_port,
            timeout=settings.fluentd_timeout,
            queue_size=settings.fluentd_queue_size,
            stdout=settings.access_log_stdout,
            level=settings.log_level,
            on_drop=on_drop,
        )

    @property
    def dropped(self) -> int:
        """Records lost so far, on their way to fluentd or to stdout."""
        return self._dropped

    def access(self, record: Mapping[str, object]) -> None:
        """Write one access record (tag ``classifier.access``)."""
        self._emit("access", ACCESS_TAG, record, to_stdout=self._access_to_stdout)

    def app(self, event: str, /, *, level: str = "info", **fields: object) -> None:
        """Write an application event (tag ``classifier.app``) if ``level`` passes the filter.

        The record is ``{"event": event, "level": level, **fields}``; ``event`` and ``level`` win
        over fields of the same name. An unknown level is never filtered out.
        """
        if LEVELS.get(level, self._min_rank) < self._min_rank:
            return
        record: dict[str, object] = {"event": event, "level": level}
        record.update((key, value) for key, value in fields.items() if key not in record)
        self._emit("app", APP_TAG, record, to_stdout=True)

    def close(self) -> None:
        """Flush to fluentd what can go within about a second, then stop the sender thread.

        Records still undelivered are dropped and counted; later records reach stdout only.
        """
        if self._sender is not None:
            self._sender.close()

    def _emit(self, label: str, tag: str, record: Mapping[str, object], *, to_stdout: bool) -> None:
        unix_ns = time.time_ns()
        if to_stdout:
            self._write_stdout(tag, unix_ns, record)
        if self._sender is not None:
            try:
                queued = self._sender.emit_with_time(
                    label, asyncsender.EventTime.from_unix_nano(unix_ns), dict(record)
                )
            except Exception:  # a log record must never fail the request that wrote it
                queued = False
            if not queued:
                self._count_dropped(1)

    def _write_stdout(self, tag: str, unix_ns: int, record: Mapping[str, object]) -> None:
        line: dict[str, object] = {"time": _iso_time(unix_ns), "tag": tag}
        line.update((key, value) for key, value in record.items() if key not in line)
        try:
            text = _json_line(line) + "\n"
            with self._stdout_lock:
                stream = sys.stdout
                stream.write(text)
                stream.flush()
        except Exception:  # closed or broken stdout: count the loss, never raise
            self._count_dropped(1)

    def _queue_overflowed(self, packet: Any) -> None:
        self._count_dropped(1)  # the queue holds one packed record per item

    def _retry_buffer_overflowed(self, pending: Any) -> None:
        self._count_dropped(_count_packed_records(pending))

    def _count_dropped(self, count: int) -> None:
        if count <= 0:
            return
        with self._dropped_lock:
            self._dropped += count
        if self._on_drop is not None:
            with contextlib.suppress(Exception):
                self._on_drop(count)
