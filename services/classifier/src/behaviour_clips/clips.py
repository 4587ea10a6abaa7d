"""Stand-alone behaviour clips: one behaviour, one random cage, deterministic from a seed."""

from __future__ import annotations

import numpy as np

from behaviour_clips.behaviours import BEHAVIOURS, LABELS, random_start
from behaviour_clips.render import UInt8Array, film
from behaviour_clips.scene import sample_scene

# Independent random streams per aspect, so that changing one (say the frame size, which changes
# how many noise values are drawn) leaves the others as they were.
SCENE_STREAM = 0
MOTION_STREAM = 1
CAMERA_STREAM = 2


def generate_clip(label: str, seed: int, *, frames: int = 24, size: int = 64) -> UInt8Array:
    """A (frames, size, size) uint8 grayscale clip of a mouse doing `label`.

    The cage, mouse size and camera depend on `seed` alone, so the same seed shows every label in
    the same cage; the motion and noise depend on both. Rendering at another `size` films the same
    scene and motion at that resolution.
    """
    if label not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {label!r}; expected one of {', '.join(LABELS)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    label_index = LABELS.index(label)
    scene = sample_scene(np.random.default_rng([seed, SCENE_STREAM]))
    motion_rng = np.random.default_rng([seed, MOTION_STREAM, label_index])
    camera_rng = np.random.default_rng([seed, CAMERA_STREAM, label_index])
    start = random_start(motion_rng, scene, label, frames)
    pose = BEHAVIOURS[label](motion_rng, scene, frames, start)
    return film([pose], scene, size, camera_rng)
