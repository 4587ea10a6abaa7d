"""Decoding ahead of the model: a thread of its own fills a bounded queue with chunks of frames.

FFmpeg's decoding and scaling and onnxruntime's inference both release the GIL, so while the
model scores one chunk the next is being decoded, on the other core. The queue holds at most
``depth`` chunks, so memory stays a few chunks of small frames whatever the recording's length.
The decoder's own errors reach the consumer unchanged, at the frame where they happened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Frames handed over at a time: one queue operation per chunk, not per frame.
CHUNK = 64
#: Chunks decoded ahead at most (64 frames of 64x64 grey: 256 KB a chunk).
DEPTH = 4
_POLL_S = 0.1


class _Finished:
    """The decoder's last word: its exception, or None at the end of the frames."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def decoded_ahead(
    frames: Iterator[T], *, chunk: int = CHUNK, depth: int = DEPTH
) -> Generator[T, None, None]:
    """``frames``, in order, decoded on a thread up to ``depth`` chunks ahead of the caller.

    Closing this generator (a cancelled analysis, an error downstream) stops the thread and
    closes ``frames`` there, which closes the video file.
    """
    handoff: queue.Queue[list[T] | _Finished] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: list[T] | _Finished) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        error: BaseException | None = None
        batch: list[T] = []
        try:
            for frame in frames:
                batch.append(frame)
                if len(batch) >= chunk:
                    if not put(batch):
                        return
                    batch = []
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        # The frames decoded before an error come first: the error names the frame after them.
        if (not batch or put(batch)) and not stop.is_set():
            put(_Finished(error))

    thread = threading.Thread(target=decode, name="recording-decoder", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _Finished):
                if item.error is not None:
                    raise item.error
                return
            yield from item
    finally:
        stop.set()
        thread.join()
