"""Per-frame probabilities from the model's own sequence head (manifest `parts.sequence_head`):
frames are encoded in batches as they stream in, and labelled in chunks that overlap by the
head's context, so only a batch of frames and a chunk of embeddings are ever held.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from classifier.core.errors import TooFewFramesError
from classifier.model.runtime import FrameLabeler, SequenceModel
from classifier.pipeline.decode import PixelArray
from classifier.recordings.scoring import encode_pixels

FloatArray = npt.NDArray[np.float32]

#: How a recording's frames got their probabilities (recorded in the provenance's parameters).
SEQUENCE_HEAD = "sequence_head"
WINDOW_MEAN = "window_mean"
METHODS = (SEQUENCE_HEAD, WINDOW_MEAN)

#: Frames encoded at once: a few megabytes of 64x64 frames, enough to amortise a call.
ENCODE_BATCH = 256


def default_method(model: SequenceModel) -> str:
    """The model's sequence head when it ships one, else the mean over sliding windows."""
    return SEQUENCE_HEAD if model.has_sequence_head else WINDOW_MEAN


class SequenceHeadLabeller:
    """Feed frames in order with ``add``; ``finish`` returns the per-frame probabilities.
    The same interface as ``WindowAggregator`` (``windows`` stays 0: no window is run)."""

    def __init__(
        self, model: SequenceModel, *, batch: int = ENCODE_BATCH, chunk_frames: int = 4096
    ) -> None:
        self.model = model
        self.spec = model.manifest.input
        self.batch = batch
        self.frames = 0
        self.windows = 0
        self._pending: list[PixelArray] = []
        self._labeler = FrameLabeler(model, chunk_frames)
        self._done: list[FloatArray] = []

    def add(self, pixels: PixelArray) -> None:
        self._pending.append(pixels)
        self.frames += 1
        if len(self._pending) >= self.batch:
            self._encode()

    def finish(self) -> FloatArray:
        # The same rule as window aggregation: a recording shorter than one clip is refused.
        if self.frames < self.spec.frames:
            raise TooFewFramesError(self.frames, self.spec.frames)
        self._encode()
        self._done.append(self._labeler.finish())
        result = np.concatenate(self._done)
        if result.shape != (self.frames, len(self.model.manifest.labels)):
            raise AssertionError(f"sequence head gave {result.shape} for {self.frames} frames")
        return result

    def add_embeddings(self, embeddings: FloatArray) -> None:
        """Frames already through the frame encoder (recordings/parallel.py), after any added
        with ``add``."""
        self._encode()
        self.frames += len(embeddings)
        self._done.append(self._labeler.push(embeddings))

    def _encode(self) -> None:
        if not self._pending:
            return
        embeddings = encode_pixels(self.model, self._pending)
        self._pending = []
        self._done.append(self._labeler.push(embeddings))
