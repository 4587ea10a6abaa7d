"""The training data: what the model takes (its input spec) and the synthetic clips it learns
from, some delivered the way held-out clips are (JPEG-compressed, or filmed larger and resized).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from behaviour_clips import LABELS, generate_clip
from behaviour_clips.render import jpeg_round_trip
from classifier.pipeline.decode import RESIZE_FILTERS

FRAMES, SIZE = 24, 64

INPUT_SPEC: dict[str, Any] = {
    "name": "frames",
    "layout": "NTHWC",
    "frames": FRAMES,
    "height": SIZE,
    "width": SIZE,
    "channels": 1,
    "dtype": "float32",
    "scaling": "unit",
    "color_mode": "L",
    "resize_filter": "bilinear",
}
"""The manifest's `input` block for the model trained here."""

ClipArray = npt.NDArray[np.uint8]
TrainingItem = tuple[str, int, str, int]
"""(label, seed, delivery, JPEG quality) of one training clip."""


def _training_clip(item: TrainingItem) -> ClipArray:
    """One training clip, sometimes delivered the way the held-out variants are (never the same
    seeds): JPEG-compressed, or filmed at 128x128 and resized by the service's filter."""
    label, seed, delivery, quality = item
    if delivery == "rgb128":
        big = generate_clip(label, seed, size=2 * SIZE)
        resize_filter = RESIZE_FILTERS[INPUT_SPEC["resize_filter"]]
        resized = [Image.fromarray(frame).resize((SIZE, SIZE), resize_filter) for frame in big]
        return np.stack([np.asarray(frame) for frame in resized])
    clip = generate_clip(label, seed)
    return jpeg_round_trip(clip, quality) if delivery == "jpeg" else clip


def make_clips(items: list[TrainingItem], workers: int) -> tuple[ClipArray, npt.NDArray[np.int64]]:
    """The clips (N, T, H, W) and their label indices, generated in ``workers`` processes."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        clips = pool.map(_training_clip, items, chunksize=64)
    labels = np.array([LABELS.index(label) for label, *_ in items], dtype=np.int64)
    return np.stack(clips), labels


def training_items(count: int, first_seed: int, rng: np.random.Generator) -> list[TrainingItem]:
    deliveries = rng.choice(["plain", "jpeg", "rgb128"], size=count, p=[0.7, 0.15, 0.15])
    qualities = rng.integers(40, 96, size=count)
    return [
        (LABELS[i % len(LABELS)], first_seed + i, str(deliveries[i]), int(qualities[i]))
        for i in range(count)
    ]
