"""Sliding windows: which windows run, and how their probabilities become each frame's."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.core.errors import TooFewFramesError
from classifier.model.manifest import InputSpec
from classifier.recordings.windows import WindowAggregator, window_starts

SPEC = InputSpec(
    name="frames",
    layout="NTHWC",
    frames=4,
    height=2,
    width=2,
    channels=1,
    scaling="raw",
    color_mode="L",
    resize_filter="bilinear",
)


def _start_of_window(batch: np.ndarray) -> np.ndarray:
    """A stand-in model: p = [s / 100, 1 - s / 100] for the window whose first frame is s
    (frame k's pixels are all k), so each answer says which window it was."""
    starts = batch[:, 0, 0, 0, 0].astype(np.float64)
    return np.stack([starts / 100, 1 - starts / 100], axis=1).astype(np.float32)


def _run(frames: int, stride: int, batch: int = 3) -> tuple[np.ndarray, WindowAggregator]:
    calls: list[int] = []

    def predict(tensor: np.ndarray) -> np.ndarray:
        calls.append(len(tensor))
        return _start_of_window(tensor)

    aggregator = WindowAggregator(SPEC, 2, predict, stride=stride, batch=batch)
    for index in range(frames):
        aggregator.add(np.full((2, 2), index, dtype=np.uint8))
    probabilities = aggregator.finish()
    assert max(calls) <= batch
    return probabilities, aggregator


@pytest.mark.parametrize(
    ("frames", "window", "stride", "expected"),
    [
        (10, 4, 1, [0, 1, 2, 3, 4, 5, 6]),
        (10, 4, 3, [0, 3, 6]),  # 6 + 4 = 10: the last window already ends at the last frame
        (10, 4, 4, [0, 4, 6]),  # one extra window ends at the last frame
        (11, 4, 4, [0, 4, 7]),
        (4, 4, 4, [0]),
        (3, 4, 1, []),
    ],
)
def test_window_starts_cover_the_first_and_the_last_frame(
    frames: int, window: int, stride: int, expected: list[int]
) -> None:
    assert window_starts(frames, window, stride) == expected


def test_each_frame_gets_the_mean_of_the_windows_that_contain_it() -> None:
    probabilities, aggregator = _run(frames=7, stride=1)
    # Windows start at 0..3; frame f is in the windows starting at max(0, f-3)..min(f, 3).
    expected = []
    for frame in range(7):
        starts = range(max(0, frame - 3), min(frame, 3) + 1)
        expected.append(np.mean([s / 100 for s in starts]))
    assert aggregator.windows == 4
    np.testing.assert_allclose(probabilities[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_a_stride_above_one_still_covers_the_last_frames() -> None:
    probabilities, aggregator = _run(frames=10, stride=4)
    # Windows at 0, 4 and (the extra one) 6: frames 8 and 9 only in the last.
    assert aggregator.windows == 3
    assert probabilities.shape == (10, 2)
    np.testing.assert_allclose(probabilities[:4, 0], 0.0, atol=1e-7)
    np.testing.assert_allclose(probabilities[4:6, 0], 0.04, rtol=1e-6)
    np.testing.assert_allclose(probabilities[6:8, 0], (0.04 + 0.06) / 2, rtol=1e-6)
    np.testing.assert_allclose(probabilities[8:, 0], 0.06, rtol=1e-6)


def test_a_long_stream_grows_the_buffers_and_keeps_only_one_window_of_frames() -> None:
    aggregator = WindowAggregator(SPEC, 2, _start_of_window, stride=2, batch=8)
    for index in range(3000):
        aggregator.add(np.full((2, 2), index % 200, dtype=np.uint8))
        assert len(aggregator._ring) <= SPEC.frames
    probabilities = aggregator.finish()
    assert probabilities.shape == (3000, 2)
    assert aggregator.windows == len(window_starts(3000, 4, 2))


def test_fewer_frames_than_one_window_names_both_numbers() -> None:
    aggregator = WindowAggregator(SPEC, 2, _start_of_window)
    for index in range(3):
        aggregator.add(np.full((2, 2), index, dtype=np.uint8))
    with pytest.raises(TooFewFramesError) as caught:
        aggregator.finish()
    assert (caught.value.frames, caught.value.window) == (3, 4)
    assert "3 frame(s)" in caught.value.detail
    assert "4 frames" in caught.value.detail
    assert caught.value.type == "too_few_frames"
