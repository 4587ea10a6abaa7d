"""Where the model runs: batched under load, and off the event loop unless it is quick.

Concurrent requests queue their sequences; one runner takes everything waiting (up to
``max_batch``), optionally waiting ``max_delay`` seconds for more, and runs it as one batch. At
low load a request runs alone at once; under load batches form by themselves while the previous
batch runs. A batch runs in a worker thread (onnxruntime releases the GIL), except a batch the
model is expected to finish within ``inline_below`` seconds, which runs on the event loop: with
one worker per core the thread has no spare core to run on, so for a short call the hand-off and
the contention cost more than keeping the loop free saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

from classifier.core.arrays import FloatArray
from classifier.core.metrics import Metrics
from classifier.model.runtime import SequenceModel


@dataclass(frozen=True, slots=True)
class Inference:
    """The model's answer for the rows a caller sent."""

    scores: FloatArray  # the graph's raw output (logits or probabilities, as the manifest says)
    probabilities: FloatArray
    seconds: float  # the model's time on the whole batch these rows ran in


@dataclass(slots=True)
class _Pending:
    batch: FloatArray
    future: asyncio.Future[Inference]


class InferenceEngine:
    """Runs one model's batches; ``infer`` is what handlers await."""

    def __init__(
        self,
        model: SequenceModel,
        metrics: Metrics,
        *,
        max_batch: int = 1,
        max_delay: float = 0.0,
        inline_below: float = 0.0,
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.inline_below = inline_below
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carried: _Pending | None = None  # did not fit the last batch; first in the next
        self._held: list[_Pending] = []  # taken off the queue, not yet answered
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.max_batch > 1 and self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="inference-batcher")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        left = [*self._held, *([self._carried] if self._carried is not None else [])]
        self._held, self._carried = [], None
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for pending in left:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the inference engine stopped"))

    async def infer(self, batch: FloatArray) -> Inference:
        """Scores and class probabilities for ``batch``, and the model's time on its batch."""
        if self._runner is None or len(batch) >= self.max_batch:
            self.metrics.queue_depth.inc(len(batch))
            try:
                return await self._run_batch(batch)
            finally:
                self.metrics.queue_depth.dec(len(batch))
        future: asyncio.Future[Inference] = asyncio.get_running_loop().create_future()
        self.metrics.queue_depth.inc(len(batch))
        self._queue.put_nowait(_Pending(batch, future))
        return await future

    async def _run_batch(self, batch: FloatArray) -> Inference:
        if len(batch) * self.model.seconds_per_sequence < self.inline_below:
            result = self._timed_run(batch)
        else:
            result = await anyio.to_thread.run_sync(self._timed_run, batch)
        self.metrics.inference.observe(result.seconds)
        self.metrics.batch_size.observe(len(batch))
        return result

    def _timed_run(self, batch: FloatArray) -> Inference:
        start = time.perf_counter()
        scores = self.model.run(batch)
        seconds = time.perf_counter() - start
        return Inference(scores, self.model.probabilities_from_scores(scores), seconds)

    async def _collect(self) -> list[_Pending]:
        """The next batch: the first waiting request, then whatever else fits and is ready."""
        if self._carried is not None:
            items, self._carried = [self._carried], None
        else:
            items = [await self._queue.get()]
        self._held = items  # answered by stop() should the runner be cancelled meanwhile
        size = len(items[0].batch)
        deadline = asyncio.get_running_loop().time() + self.max_delay
        while size < self.max_batch:
            if self._queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if size + len(item.batch) > self.max_batch:
                self._carried = item
                break
            items.append(item)
            size += len(item.batch)
        return items

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            size = sum(len(item.batch) for item in items)
            self.metrics.queue_depth.dec(size)
            live = [item for item in items if not item.future.done()]  # skip cancelled requests
            if not live:
                self._held = []
                continue
            batch = live[0].batch if len(live) == 1 else np.concatenate([i.batch for i in live])
            try:
                result = await self._run_batch(batch)
            except Exception as exc:  # the requests get the error, the runner carries on
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
                self._held = []
                continue
            offset = 0
            for item in live:
                rows = slice(offset, offset + len(item.batch))
                if not item.future.done():
                    item.future.set_result(
                        Inference(result.scores[rows], result.probabilities[rows], result.seconds)
                    )
                offset += len(item.batch)
            self._held = []
