"""Long recordings: one mouse in one cage switching between behaviour bouts, labelled per frame.

Bouts follow a Markov chain whose transitions and bout lengths (at 30 frames per second) are
plausible for a mouse in its home cage. Places matter: the mouse walks to the hopper before eating
and to the spout before drinking, and climbs to the lid from a rear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from behaviour_clips.behaviours import (
    BEHAVIOURS,
    HALF_SPAN,
    LABELS,
    BoutStart,
    centre_limits,
    place_for,
)
from behaviour_clips.clips import CAMERA_STREAM
from behaviour_clips.pose import Pose
from behaviour_clips.render import UInt8Array, film
from behaviour_clips.scene import Scene, sample_scene

FRAMES_PER_SECOND = 30

BOUT_FRAMES: dict[str, tuple[float, int, int]] = {
    # label: (median, shortest, longest) bout length in frames
    "drink": (90, 20, 450),
    "eat": (240, 30, 1200),
    "groom": (150, 30, 900),
    "hang": (90, 20, 450),
    "micromovement": (60, 12, 300),
    "rear": (45, 15, 150),
    "rest": (600, 90, 3000),
    "walk": (45, 12, 240),
}

TRANSITIONS: dict[str, dict[str, float]] = {
    # Eating and drinking are only entered by walking there; hanging only from a rear.
    "drink": {"walk": 0.5, "micromovement": 0.25, "groom": 0.15, "rear": 0.1},
    "eat": {"walk": 0.45, "micromovement": 0.2, "groom": 0.25, "rest": 0.1},
    "groom": {"micromovement": 0.3, "rest": 0.3, "walk": 0.4},
    "hang": {"walk": 0.4, "rear": 0.3, "micromovement": 0.3},
    "micromovement": {"walk": 0.45, "groom": 0.2, "rest": 0.15, "rear": 0.2},
    "rear": {"walk": 0.35, "hang": 0.25, "micromovement": 0.25, "groom": 0.15},
    "rest": {"micromovement": 0.5, "groom": 0.3, "walk": 0.2},
    "walk": {
        "micromovement": 0.2,
        "rear": 0.25,
        "eat": 0.2,
        "drink": 0.17,
        "groom": 0.1,
        "rest": 0.08,
    },
}

RECORDING_STREAM = 3


def _bout_length(rng: np.random.Generator, label: str) -> int:
    median, shortest, longest = BOUT_FRAMES[label]
    return int(np.clip(round(median * np.exp(rng.normal(0.0, 0.5))), shortest, longest))


def _next_label(rng: np.random.Generator, label: str) -> str:
    choices = TRANSITIONS[label]
    names = list(choices)
    weights = np.array([choices[name] for name in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def bout_schedule(rng: np.random.Generator, n_frames: int) -> list[tuple[str, int]]:
    """(label, length) bouts that add up to exactly `n_frames`."""
    label = LABELS[int(rng.integers(len(LABELS)))]
    schedule: list[tuple[str, int]] = []
    remaining = n_frames
    while remaining > 0:
        length = min(_bout_length(rng, label), remaining)
        schedule.append((label, length))
        remaining -= length
        label = _next_label(rng, label)
    return schedule


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """Everything about a recording before it is filmed: the cage, the bouts and their poses."""

    scene: Scene
    schedule: list[tuple[str, int]]
    poses: list[Pose]


def plan_recording(seed: int, n_frames: int) -> RecordingPlan:
    """The cage, bout schedule and per-bout poses of recording `seed`, each bout starting where
    the previous one left the mouse."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    rng = np.random.default_rng([seed, RECORDING_STREAM])
    scene = sample_scene(rng)
    schedule = bout_schedule(rng, n_frames)
    lo, hi = centre_limits(scene)
    centre_x, facing = float(rng.uniform(lo, hi)), 1.0 if rng.random() < 0.5 else -1.0
    poses: list[Pose] = []
    for index, (label, length) in enumerate(schedule):
        following = schedule[index + 1][0] if index + 1 < len(schedule) else None
        target = place_for(following, scene) if label == "walk" and following else None
        pose = BEHAVIOURS[label](rng, scene, length, BoutStart(centre_x, facing, target))
        poses.append(pose)
        facing = float(pose.facing[-1])
        centre_x = float(pose.hip_x[-1]) + facing * HALF_SPAN * scene.mouse_length
    return RecordingPlan(scene, schedule, poses)


def generate_recording(seed: int, n_frames: int, *, size: int = 64) -> tuple[UInt8Array, list[str]]:
    """A (n_frames, size, size) uint8 recording and the behaviour label of every frame."""
    plan = plan_recording(seed, n_frames)
    camera_rng = np.random.default_rng([seed, RECORDING_STREAM, CAMERA_STREAM])
    frames = film(plan.poses, plan.scene, size, camera_rng)
    labels = [label for label, length in plan.schedule for _ in range(length)]
    return frames, labels
