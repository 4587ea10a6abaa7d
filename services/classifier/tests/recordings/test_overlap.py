"""Decoding ahead on a thread: the same frames in order, the decoder's errors, a clean stop."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator

import numpy as np
import pytest

from classifier.core.errors import CorruptRecordingError
from classifier.recordings.overlap import decoded_ahead
from classifier.recordings.source import DecodedFrame


class _Frames:
    """A stand-in decoder: ``count`` frames, then optionally an error; says when it is closed
    and which thread ran it."""

    def __init__(self, count: int, error: Exception | None = None) -> None:
        self.count = count
        self.error = error
        self.closed = threading.Event()
        self.produced = 0
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[DecodedFrame]:
        return self._generate()

    def _generate(self) -> Iterator[DecodedFrame]:
        try:
            for index in range(self.count):
                self.threads.add(threading.current_thread().name)
                self.produced += 1
                yield DecodedFrame(index, index / 30, np.full((2, 2), index % 256, np.uint8))
            if self.error is not None:
                raise self.error
        finally:
            self.closed.set()


def test_every_frame_arrives_in_order_decoded_on_another_thread() -> None:
    source = _Frames(1000)
    frames = list(decoded_ahead(iter(source), chunk=7, depth=2))
    assert [frame.index for frame in frames] == list(range(1000))
    assert all(int(frame.pixels[0, 0]) == frame.index % 256 for frame in frames)
    assert source.threads == {"recording-decoder"}
    assert source.closed.is_set()


def test_the_decoders_error_reaches_the_caller_after_the_frames_before_it() -> None:
    source = _Frames(10, CorruptRecordingError("cage.mp4: decoding stopped at frame 10"))
    seen: list[int] = []

    def consume() -> None:
        for frame in decoded_ahead(iter(source), chunk=4):
            seen.append(frame.index)

    with pytest.raises(CorruptRecordingError, match="stopped at frame 10"):
        consume()
    assert seen == list(range(10))


def test_stopping_early_stops_the_decoder_and_closes_the_source() -> None:
    source = _Frames(100_000)
    ahead: Generator[DecodedFrame, None, None] = decoded_ahead(iter(source), chunk=8, depth=2)
    assert [next(ahead).index for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert source.closed.wait(5)
    # At most the chunks the queue holds, the one being put, and the one handed over.
    assert source.produced <= 8 * 5
    assert not any(thread.name == "recording-decoder" for thread in threading.enumerate())
