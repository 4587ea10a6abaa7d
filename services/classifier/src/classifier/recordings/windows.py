"""Sliding windows of the model's sequence length over a stream of frames, and per-frame labels.

Windows start every ``stride`` frames from frame 0; when the last of those does not end at the
last frame, one more window does (it starts at ``frames - window``), so the first and the last
frames are always covered. A frame's probabilities are the mean of the probabilities of every
window that contains it. Only the last window's frames are held (a ring buffer): a recording
of any length is streamed through.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from classifier.core.errors import TooFewFramesError
from classifier.model.manifest import InputSpec
from classifier.pipeline.decode import PixelArray
from classifier.pipeline.tensor import build_tensor

FloatArray = npt.NDArray[np.float32]
Predict = Callable[[FloatArray], FloatArray]

#: Windows run through the model at once: large enough to amortise a call, small enough that a
#: batch of 24x64x64 windows stays a few megabytes.
DEFAULT_BATCH = 32


def window_starts(frames: int, window: int, stride: int) -> list[int]:
    """The first frame of every window over ``frames`` frames (empty when too few frames)."""
    if frames < window:
        return []
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return starts


class FrameMeans:
    """Each frame's mean of the window probabilities over the windows that contain it, kept as
    running sums and counts that grow with the recording (both window scorers use it)."""

    def __init__(self, labels: int, window: int) -> None:
        self.labels = labels
        self.window = window
        self._sums = np.zeros((1024, labels), dtype=np.float64)
        self._counts = np.zeros(1024, dtype=np.int64)

    def add(
        self, starts: Sequence[int], probabilities: npt.NDArray[np.float64], scorer: str
    ) -> None:
        """Count the windows starting at ``starts``, one row of ``probabilities`` each."""
        if probabilities.shape != (len(starts), self.labels):
            raise ValueError(
                f"the {scorer} answered shape {probabilities.shape} for {len(starts)} windows, "
                f"expected ({len(starts)}, {self.labels})"
            )
        self._grow(starts[-1] + self.window)
        for start, row in zip(starts, probabilities, strict=True):
            self._sums[start : start + self.window] += row
            self._counts[start : start + self.window] += 1

    def means(self, frames: int) -> FloatArray:
        """The per-frame means of the first ``frames`` frames."""
        counts = self._counts[:frames]
        if not np.all(counts > 0):  # cannot happen by construction; a bug must not pass silently
            raise AssertionError(f"frames without a window: {np.flatnonzero(counts == 0)[:5]}")
        mean = self._sums[:frames] / counts[:, np.newaxis]
        result: FloatArray = mean.astype(np.float32)
        return result

    def _grow(self, needed: int) -> None:
        if needed <= len(self._counts):
            return
        size = max(needed, 2 * len(self._counts))
        sums = np.zeros((size, self.labels), dtype=np.float64)
        sums[: len(self._sums)] = self._sums
        counts = np.zeros(size, dtype=np.int64)
        counts[: len(self._counts)] = self._counts
        self._sums, self._counts = sums, counts


class WindowAggregator:
    """Feed frames in order with ``add``; ``finish`` returns the per-frame probabilities."""

    def __init__(
        self,
        spec: InputSpec,
        labels: int,
        predict: Predict,
        *,
        stride: int = 1,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.spec = spec
        self.window = spec.frames
        self.stride = stride
        self.labels = labels
        self.predict = predict
        self.batch = batch
        self.frames = 0
        self.windows = 0
        self._ring: deque[PixelArray] = deque(maxlen=self.window)
        self._pending: list[tuple[int, FloatArray]] = []
        self._means = FrameMeans(labels, self.window)

    def add(self, pixels: PixelArray) -> None:
        self._ring.append(pixels)
        self.frames += 1
        start = self.frames - self.window
        if start >= 0 and start % self.stride == 0:
            self._queue(start)

    def finish(self) -> FloatArray:
        """Run the remaining windows (the last one included) and average per frame."""
        if self.frames < self.window:
            raise TooFewFramesError(self.frames, self.window)
        last = self.frames - self.window
        if last % self.stride != 0:
            self._queue(last)
        self._flush()
        return self._means.means(self.frames)

    def _queue(self, start: int) -> None:
        self._pending.append((start, build_tensor(list(self._ring), self.spec)))
        if len(self._pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        starts = [start for start, _ in self._pending]
        batch = np.concatenate([tensor for _, tensor in self._pending])
        self._pending.clear()
        probabilities = np.asarray(self.predict(batch), dtype=np.float64)
        self._means.add(starts, probabilities, "model")
        self.windows += len(starts)
