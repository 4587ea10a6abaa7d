"""A long recording decoded and encoded by several processes at once, one stretch each.

Decoding a recording and running its frames through the frame encoder is nearly all of an
analysis's work, and it is the same work for every frame wherever the frame is. So the recording
is cut into stretches that decode on their own (a video at keyframes, an image sequence
anywhere: ``FrameSource.stretches``), and worker processes forked from the analysing process
(sharing its loaded model) take one stretch at a time: decode it on one thread, convert its
frames, encode them, and send the embeddings back in chunks. The analysing process hands the
stretches out in order, never more than ``AHEAD`` per worker beyond the one it is reading, puts
the chunks back in order and gives them to the sequence head or the temporal head, which cost
little. Memory stays a few stretches of embeddings (256 bytes a frame) whatever the length.

A video that does not split cleanly (``IrregularStretchError``: frames without timestamps,
timestamps out of order, a decoding error, fewer frames than the container lists) makes
``encoded_in_stretches`` raise
``StretchesAbandonedError``; the caller then decodes the whole file in order, which names any
real fault exactly as it would have. An image sequence's bad frame is a ``RecordingError``
raised where the frames before it have been read, as decoding in order would.

Workers die with the analysing process (``PR_SET_PDEATHSIG`` on Linux, and they stop when their
pipe closes), so stopping a job's process stops its workers too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from classifier.core.arrays import FloatArray
from classifier.core.errors import AnalysisCancelledError, RecordingError
from classifier.model.runtime import SequenceModel
from classifier.recordings.scoring import ENCODE_CHUNK, encode_pixels
from classifier.recordings.source import FrameSource, IrregularStretchError, Stretch

#: Stretches are at least this long (a worker's start and a seek cost about a frame's decoding
#: each) and at most this long (the most embeddings buffered per stretch: 2 MB).
MIN_STRETCH_FRAMES = 1024
MAX_STRETCH_FRAMES = 8192
#: Stretches per worker when the recording is short enough: the last ones even out the work.
STRETCHES_PER_WORKER = 8
#: Stretches handed out per worker beyond the one being read (bounds what is buffered).
AHEAD = 2
_WAIT_S = 0.2


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """Consecutive frames of the recording: their start times, their embeddings ``[n, E]``,
    and how long the last of them is shown (when the source says)."""

    times: npt.NDArray[np.float64]
    embeddings: FloatArray
    last_duration: float | None


class StretchesAbandonedError(Exception):
    """The recording would not decode in stretches; decode it in order instead."""


def plan_stretches(source: FrameSource, workers: int) -> list[Stretch] | None:
    """How ``source`` is cut for ``workers`` processes, or None when it is not worth it (one
    worker, a recording shorter than two stretches, a length the container does not say, a
    video with one keyframe)."""
    declared = source.info.declared_frames
    if workers < 2 or not declared or declared < 2 * MIN_STRETCH_FRAMES:
        return None
    length = declared // (workers * STRETCHES_PER_WORKER)
    length = min(max(length, MIN_STRETCH_FRAMES), MAX_STRETCH_FRAMES)
    stretches = source.stretches(max(2, declared // length))
    return stretches if stretches is not None and len(stretches) > 1 else None


def encoded_in_stretches(
    source: FrameSource,
    model: SequenceModel,
    stretches: Sequence[Stretch],
    workers: int,
    *,
    received: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Generator[EncodedChunk, None, None]:
    """The recording's embeddings in frame order, from ``workers`` forked processes.

    ``received(frames)`` is told how many frames the workers have encoded so far, out of order
    included (progress), after each chunk; ``cancelled()`` is polled as often and at least five
    times a second, and raises AnalysisCancelledError when it answers True. Closing the
    generator early stops the workers.
    """
    pool = _Pool(source, model, min(workers, len(stretches)))
    try:
        yield from pool.run(list(stretches), received, cancelled)
        pool.stop()
    finally:
        pool.kill()


class _Pool:
    def __init__(self, source: FrameSource, model: SequenceModel, workers: int) -> None:
        self.conns: list[Connection] = []
        self.pids: list[int] = []
        try:
            self._start(source, model, workers)
        except BaseException:  # a failed fork: the workers already started go too
            self.kill()
            raise

    def _start(self, source: FrameSource, model: SequenceModel, workers: int) -> None:
        for _ in range(workers):
            ours, theirs = Pipe(duplex=True)
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the caller's code
                code = 1
                try:
                    ours.close()
                    for conn in self.conns:
                        conn.close()
                    code = _work(source, model, theirs)
                finally:
                    os._exit(code)
            theirs.close()
            self.conns.append(ours)
            self.pids.append(pid)

    def run(
        self,
        stretches: list[Stretch],
        received: Callable[[int], None] | None,
        cancelled: Callable[[], bool] | None,
    ) -> Generator[EncodedChunk, None, None]:
        idle = list(self.conns)
        handed = 0  # stretches handed out so far (they go out in order)
        reading = 0  # the stretch whose chunks are yielded as they come
        waiting: dict[int, list[EncodedChunk]] = {}  # chunks of later stretches, held
        ended: dict[int, RecordingError | None] = {}  # stretches their worker is done with
        frames = 0
        while reading < len(stretches):
            while idle and handed < len(stretches) and handed <= reading + AHEAD * len(self.conns):
                idle.pop().send((handed, stretches[handed]))
                handed += 1
            if cancelled is not None and cancelled():
                raise AnalysisCancelledError(f"the analysis was cancelled after {frames} frames")
            for ready in wait(self.conns, timeout=_WAIT_S):
                conn = cast(Connection, ready)
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    raise StretchesAbandonedError("a worker process died") from None
                kind, number = message[0], message[1]
                if kind == "chunk":
                    chunk = EncodedChunk(*message[2:])
                    frames += len(chunk.times)
                    if number == reading:
                        yield chunk
                    else:
                        waiting.setdefault(number, []).append(chunk)
                    if received is not None:
                        received(frames)
                elif kind in ("done", "failed"):
                    ended[number] = message[2] if kind == "failed" else None
                    idle.append(conn)
                else:  # "irregular": the file does not bear splitting
                    raise StretchesAbandonedError(f"stretch {number}: {message[2]}")
            while reading in ended:
                error = ended.pop(reading)
                if error is not None:
                    raise error
                reading += 1
                yield from waiting.pop(reading, [])
        listed = getattr(stretches[0], "listed", None)
        if listed and frames < listed:
            # A video that ends before the frames its container lists: decoding it in order
            # says where and how (a truncated file), as it would have without stretches.
            raise StretchesAbandonedError(f"{frames} frames decoded, the container lists {listed}")

    def stop(self) -> None:
        """Tell the workers there is no more work and let them exit."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + 1.0
        while self.pids and time.monotonic() < deadline:
            for pid in list(self.pids):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    self.pids.remove(pid)
            if self.pids:
                time.sleep(0.005)

    def kill(self) -> None:
        """Stop whatever worker is left, now (an error, a cancel, a generator closed early)."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []
        for conn in self.conns:
            conn.close()
        self.conns = []


def _die_with_parent() -> None:
    """Have the kernel kill this process when the process that forked it dies (Linux)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _work(source: FrameSource, model: SequenceModel, conn: Connection) -> int:
    """A worker's loop: a stretch in, its embeddings out in chunks, until told to stop."""
    _die_with_parent()
    spec = model.manifest.input
    try:
        while (order := conn.recv()) is not None:
            number, stretch = order
            try:
                pending: list[Any] = []
                times: list[float] = []
                last_duration: float | None = None
                for frame in source.frames_of(spec, stretch):
                    pending.append(frame.pixels)
                    times.append(frame.time_s)
                    last_duration = frame.duration_s
                    if len(pending) >= ENCODE_CHUNK:
                        conn.send(_chunk(number, model, pending, times, last_duration))
                        pending, times = [], []
                if pending:
                    conn.send(_chunk(number, model, pending, times, last_duration))
                conn.send(("done", number))
            except RecordingError as exc:
                conn.send(("failed", number, exc))
            except IrregularStretchError as exc:
                conn.send(("irregular", number, str(exc)))
    except (EOFError, OSError):  # the analysing process is gone
        return 1
    except BaseException as exc:  # anything else: said, so that the file is decoded in order
        traceback.print_exc()
        with contextlib.suppress(OSError):
            conn.send(("irregular", -1, f"{type(exc).__name__}: {exc}"))
        return 1
    return 0


def _chunk(
    number: int,
    model: SequenceModel,
    pixels: list[Any],
    times: list[float],
    last_duration: float | None,
) -> tuple[Any, ...]:
    embeddings = encode_pixels(model, pixels)
    return ("chunk", number, np.asarray(times, np.float64), embeddings, last_duration)
