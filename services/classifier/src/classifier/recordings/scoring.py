"""How a recording's windows are scored by the model: ``scorer_for(model)`` picks the way.

A model with parts (a frame encoder and a temporal head) takes ``SplitScorer``: each frame goes
through the CNN once, its embedding is kept for as long as a window can still use it, and the
head runs over many windows at once. Any other model (a user's own, with only the whole-clip
graph) takes ``WholeClipScorer``: the whole-clip graph on batches of windows, each frame read by
the CNN once per window that contains it. Both give each frame the mean of its windows'
probabilities (windows.py has the rules) and agree within ``PARTS_TOLERANCE``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from classifier.core.arrays import FloatArray
from classifier.core.errors import TooFewFramesError
from classifier.model.runtime import SequenceModel
from classifier.pipeline.decode import PixelArray
from classifier.pipeline.tensor import build_tensor
from classifier.recordings.windows import FrameMeans, WindowAggregator

#: Frames encoded per call of the frame encoder: one call's overhead spread over many frames,
#: and a chunk of 64x64 frames a megabyte of floats.
ENCODE_CHUNK = 256
#: Windows per call of the temporal head (a window of 24 embeddings of 64 floats is 6 KB).
HEAD_BATCH = 512


def encode_pixels(model: SequenceModel, pixels: list[PixelArray]) -> FloatArray:
    """Embeddings ``[n, E]`` of frames in the manifest's size and mode: the same scaling and
    layout as a window of the whole graph, one frame per row."""
    return model.encode_frames(build_tensor(pixels, model.manifest.input)[0])


class WindowScorer(Protocol):
    """Frames in, in order, with ``add``; ``finish`` answers per-frame probabilities
    ``[frames, labels]``. ``windows``: how many windows were scored."""

    @property
    def windows(self) -> int: ...

    def add(self, pixels: PixelArray) -> None: ...

    def finish(self) -> FloatArray: ...


def scorer_for(model: SequenceModel, *, stride: int = 1) -> WindowScorer:
    """The split path when the model ships its parts, else the whole-clip graph."""
    if model.has_parts:
        return SplitScorer(model, stride=stride)
    return WholeClipScorer(model, stride=stride)


class WholeClipScorer:
    """The whole-clip graph on batched windows of pixels (``WindowAggregator``)."""

    def __init__(self, model: SequenceModel, *, stride: int = 1) -> None:
        manifest = model.manifest
        self._aggregator = WindowAggregator(
            manifest.input, len(manifest.labels), model.probabilities_for, stride=stride
        )

    @property
    def windows(self) -> int:
        return self._aggregator.windows

    def add(self, pixels: PixelArray) -> None:
        self._aggregator.add(pixels)

    def finish(self) -> FloatArray:
        return self._aggregator.finish()


class SplitScorer:
    """Every frame through the frame encoder once, in chunks; windows scored from embeddings.

    Holds the frames of one chunk and the last window's embeddings, whatever the recording's
    length, plus the per-frame sums (a few floats a frame).
    """

    def __init__(
        self,
        model: SequenceModel,
        *,
        stride: int = 1,
        chunk: int = ENCODE_CHUNK,
        head_batch: int = HEAD_BATCH,
    ) -> None:
        if not model.has_parts:
            raise ValueError(f"model {model.name!r} has no frame encoder and temporal head")
        self.model = model
        self.spec = model.manifest.input
        self.window = self.spec.frames
        self.stride = stride
        self.labels = len(model.manifest.labels)
        self.chunk = chunk
        self.head_batch = head_batch
        self.frames = 0
        self._windows = 0
        self._pending: list[PixelArray] = []
        # Embeddings of frames [self._base, self.frames): the last window's worth, after a flush.
        self._embeddings: FloatArray | None = None
        self._base = 0
        self._next_start = 0  # the next window start on the stride not yet scored
        self._means = FrameMeans(self.labels, self.window)

    @property
    def windows(self) -> int:
        return self._windows

    def add(self, pixels: PixelArray) -> None:
        self._pending.append(pixels)
        if len(self._pending) >= self.chunk:
            self._encode_pending()

    def finish(self) -> FloatArray:
        self._encode_pending()
        if self.frames < self.window:
            raise TooFewFramesError(self.frames, self.window)
        last = self.frames - self.window
        if last % self.stride != 0:
            self._score([last])
        return self._means.means(self.frames)

    def add_embeddings(self, embedded: FloatArray) -> None:
        """Frames already through the frame encoder (recordings/parallel.py), after any added
        with ``add``."""
        self._encode_pending()
        if len(embedded):
            self._take(embedded)

    def _encode_pending(self) -> None:
        if not self._pending:
            return
        embedded = encode_pixels(self.model, self._pending)
        self._pending = []
        self._take(embedded)

    def _take(self, embedded: FloatArray) -> None:
        if self._embeddings is None:
            self._embeddings = embedded
        else:
            self._embeddings = np.concatenate([self._embeddings, embedded])
        self.frames += len(embedded)
        complete = self.frames - self.window  # the last start with a whole window decoded
        if complete >= self._next_start:
            starts = list(range(self._next_start, complete + 1, self.stride))
            for first in range(0, len(starts), self.head_batch):
                self._score(starts[first : first + self.head_batch])
            self._next_start = starts[-1] + self.stride
        # Keep one window's embeddings: the last window (scored at finish) may need them.
        keep = min(len(self._embeddings), self.window)
        self._embeddings = self._embeddings[-keep:].copy()
        self._base = self.frames - keep

    def _score(self, starts: list[int]) -> None:
        assert self._embeddings is not None
        views = np.lib.stride_tricks.sliding_window_view(self._embeddings, self.window, axis=0)
        offsets = np.asarray(starts) - self._base
        batch = np.ascontiguousarray(views[offsets].transpose(0, 2, 1))  # [W, T, E]
        probabilities = np.asarray(self.model.classify_windows(batch), dtype=np.float64)
        self._means.add(starts, probabilities, "temporal head")
        self._windows += len(starts)
