"""Where the model runs: off the event loop, timed and counted."""

from __future__ import annotations

import time

import anyio.to_thread

from classifier.core.metrics import Metrics
from classifier.model.runtime import FloatArray, SequenceModel


class InferenceEngine:
    """Runs batches through one model in a worker thread (onnxruntime releases the GIL)."""

    def __init__(self, model: SequenceModel, metrics: Metrics) -> None:
        self.model = model
        self.metrics = metrics

    async def predict(self, batch: FloatArray) -> tuple[FloatArray, float]:
        """Class probabilities for ``batch`` and the seconds the model took."""
        self.metrics.queue_depth.inc(len(batch))
        try:
            probabilities, seconds = await anyio.to_thread.run_sync(self._timed_predict, batch)
        finally:
            self.metrics.queue_depth.dec(len(batch))
        self.metrics.inference.observe(seconds)
        self.metrics.batch_size.observe(len(batch))
        return probabilities, seconds

    def _timed_predict(self, batch: FloatArray) -> tuple[FloatArray, float]:
        start = time.perf_counter()
        probabilities = self.model.predict(batch)
        return probabilities, time.perf_counter() - start
