"""The eight behaviours as motion programs: each turns a bout length into a pose per frame.

The classes and their order are those of the Jhuang et al. (2010) home-cage set. A program
starts from where the previous bout left the mouse (`BoutStart`), so bouts chain into long
recordings; a behaviour that happens at a place (the hopper, the spout, the lid) goes there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from behaviour_clips.pose import (
    BODY_HALF_HEIGHT,
    BODY_HALF_LENGTH,
    NOSE_REACH,
    Pose,
    nose_offset,
    skeleton,
)
from behaviour_clips.scene import FloatArray, Scene

LABELS: tuple[str, ...] = (
    "drink",
    "eat",
    "groom",
    "hang",
    "micromovement",
    "rear",
    "rest",
    "walk",
)
"""Class names in the model's output order."""

HALF_SPAN = NOSE_REACH / 2.0
"""Hip to mid-body of a stretched mouse, as a fraction of mouse length."""
WALL_MARGIN = 0.04
"""Gap kept between the mouse and the side walls (the frame edges), as a fraction of the frame."""


@dataclass(frozen=True, slots=True)
class BoutStart:
    """Where a bout begins: the mouse's mid-body x and facing, and where a walk should end."""

    centre_x: float
    facing: float
    walk_target_x: float | None = None
    under_way: bool = False
    """True for a stand-alone clip: a window cut from a bout already in progress."""


Behaviour = Callable[[np.random.Generator, Scene, int, BoutStart], Pose]


def _full(n: int, value: float) -> FloatArray:
    return np.full(n, value, dtype=np.float32)


def _f32(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float32)


def _pose(n: int, **fields: FloatArray | float) -> Pose:
    """A still, stretched, right-way-up mouse, overridden by `fields` (scalars or arrays)."""
    defaults: dict[str, float] = {
        "elevation": 0.0,
        "facing": 1.0,
        "head_pitch": 0.15,
        "curl": 0.0,
        "paws_at_mouth": 0.0,
        "paws_on_lid": 0.0,
        "paw_stroke": 0.0,
        "gait_phase": 0.0,
        "stride": 0.0,
        "upside_down": 0.0,
        "tail_hanging": 0.0,
        "breathing": 0.0,
    }
    values: dict[str, FloatArray] = {}
    for name in ("hip_x", "hip_y", *defaults):
        given = fields.get(name, defaults.get(name))
        if given is None:
            raise TypeError(f"pose field {name} is required")
        values[name] = _full(n, float(given)) if np.ndim(given) == 0 else _f32(given)
    return Pose(**values)


def centre_limits(scene: Scene) -> tuple[float, float]:
    """Range of mid-body x that keeps a stretched mouse inside the cage walls."""
    half = HALF_SPAN * scene.mouse_length
    return WALL_MARGIN + half, 1.0 - WALL_MARGIN - half


def _standing_hip_y(scene: Scene, curl: FloatArray, elevation: FloatArray) -> FloatArray:
    """Hip height that puts the lowest point of the body just above the floor.

    The hip is the rear tip of the body ellipse, so a raised body sits on its haunches.
    """
    body_rx = BODY_HALF_LENGTH * (1.0 - 0.3 * curl)
    body_ry = BODY_HALF_HEIGHT * (1.0 + 0.55 * curl)
    sin, cos = np.sin(elevation), np.cos(elevation)
    lowest_below_hip = np.sqrt((body_rx * sin) ** 2 + (body_ry * cos) ** 2) - body_rx * sin
    clearance = 0.07 * (1.0 - curl) + 0.01
    return _f32(scene.floor_y - scene.mouse_length * (lowest_below_hip + clearance))


def _hip_from_centre(centre_x: FloatArray, facing: FloatArray, scene: Scene) -> FloatArray:
    return _f32(centre_x - facing * HALF_SPAN * scene.mouse_length)


def _smoothstep(x: FloatArray) -> FloatArray:
    t = np.clip(x, 0.0, 1.0)
    return _f32(t * t * (3.0 - 2.0 * t))


def _wander(rng: np.random.Generator, n: int, scale: float, pull: float) -> FloatArray:
    """A mean-reverting random walk around 0: fidgeting that goes nowhere."""
    steps = rng.normal(0.0, scale, n)
    out = np.empty(n, dtype=np.float32)
    value = 0.0
    for i in range(n):
        value += steps[i] - pull * value
        out[i] = value
    return out


def _oscillation(rng: np.random.Generator, n: int, period: float) -> FloatArray:
    """sin of a phase that advances 2*pi/period per frame, from a random start, with jitter."""
    rate = 2.0 * np.pi / period
    steps = rate * (1.0 + rng.normal(0.0, 0.08, n))
    return _f32(np.sin(rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(steps)))


def walk(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Trots along the floor with a bobbing gait, turning at walls; ends at the walk target."""
    lo, hi = centre_limits(scene)
    cruise = float(rng.uniform(0.011, 0.021))
    top_speed = 0.03
    centre = np.empty(n, dtype=np.float32)
    facing = np.empty(n, dtype=np.float32)
    x, heading = float(np.clip(start.centre_x, lo, hi)), start.facing
    for t in range(n):
        speed = cruise * (1.0 + 0.15 * np.sin(0.4 * t))
        if start.walk_target_x is not None:
            gap = start.walk_target_x - x
            needed = abs(gap) / max(n - t, 1)
            if needed >= speed * 0.8:
                heading = 1.0 if gap > 0 else -1.0
                speed = min(max(needed, speed), top_speed)
        x += heading * speed
        if x > hi or x < lo:
            x = float(np.clip(x, lo, hi))
            heading = -heading
        centre[t], facing[t] = x, heading
    period = float(rng.uniform(5.0, 8.0))
    phase = _f32(rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.arange(n) / period)
    bob = np.abs(np.sin(phase))
    elevation = _f32(0.03 + 0.04 * np.sin(phase) + rng.uniform(-0.03, 0.05))
    curl = _full(n, float(rng.uniform(0.0, 0.15)))
    return _pose(
        n,
        hip_x=_hip_from_centre(centre, facing, scene),
        hip_y=_f32(_standing_hip_y(scene, curl, elevation) - 0.012 * scene.mouse_length * bob),
        elevation=elevation,
        facing=facing,
        head_pitch=_f32(0.12 + 0.06 * np.sin(phase + 1.0)),
        curl=curl,
        gait_phase=phase,
        stride=float(rng.uniform(0.06, 0.1)),
    )


def rest(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Curled up on the floor, still but for slow breathing."""
    lo, hi = centre_limits(scene)
    centre = float(np.clip(start.centre_x, lo, hi))
    curl = _full(n, float(rng.uniform(0.75, 1.0)))
    elevation = _full(n, float(rng.uniform(0.0, 0.12)))
    breathing = 0.03 * _oscillation(rng, n, float(rng.uniform(9.0, 15.0)))
    return _pose(
        n,
        hip_x=_hip_from_centre(_full(n, centre), _full(n, start.facing), scene),
        hip_y=_standing_hip_y(scene, curl, elevation),
        elevation=elevation,
        facing=start.facing,
        head_pitch=float(rng.uniform(0.1, 0.4)),
        curl=curl,
        breathing=breathing,
    )


def micromovement(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Stays in place on all fours, fidgeting: small shifts of body and head, sniffing."""
    lo, hi = centre_limits(scene)
    centre = float(np.clip(start.centre_x, lo + 0.02, hi - 0.02))
    shift = _wander(rng, n, 0.004, 0.25)
    curl = _f32(float(rng.uniform(0.0, 0.35)) + np.abs(_wander(rng, n, 0.03, 0.3)))
    elevation = _f32(float(rng.uniform(-0.02, 0.15)) + _wander(rng, n, 0.03, 0.3))
    head = _f32(float(rng.uniform(-0.1, 0.35)) + _wander(rng, n, 0.12, 0.35))
    return _pose(
        n,
        hip_x=_hip_from_centre(centre + shift, _full(n, start.facing), scene),
        hip_y=_standing_hip_y(scene, curl, elevation),
        elevation=elevation,
        facing=start.facing,
        head_pitch=head,
        curl=curl,
        gait_phase=_f32(np.cumsum(rng.normal(0.0, 0.9, n))),
        stride=0.02,
    )


def groom(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Sits hunched and still while the forepaws stroke the face fast, nodding the head."""
    lo, hi = centre_limits(scene)
    centre = float(np.clip(start.centre_x, lo, hi))
    curl = _full(n, float(rng.uniform(0.25, 0.5)))
    elevation = _full(n, float(rng.uniform(0.5, 0.9)))
    stroke = _oscillation(rng, n, float(rng.uniform(2.3, 3.6)))
    reach = float(rng.uniform(0.04, 0.07))
    return _pose(
        n,
        hip_x=_hip_from_centre(_full(n, centre), _full(n, start.facing), scene),
        hip_y=_standing_hip_y(scene, curl, elevation),
        elevation=elevation,
        facing=start.facing,
        head_pitch=_f32(float(rng.uniform(0.4, 0.8)) + 0.12 * stroke),
        curl=curl,
        paws_at_mouth=1.0,
        paw_stroke=_f32(0.03 + reach * stroke),
    )


def rear_hip_range(scene: Scene, facing: float) -> tuple[float, float]:
    """Hip x range from which a rear, facing that way, keeps clear of the hopper and the spout.

    Upright, the nose reaches up to 0.7 mouse lengths ahead of the hip; on the way up, 0.95.
    The range is empty (lo > hi) where this cage leaves no room facing that way.
    """
    length = scene.mouse_length
    if facing < 0:
        return scene.hopper_x1 + 0.03 + 0.7 * length, scene.spout_tip_x - 0.08
    return scene.hopper_x1 + 0.03, scene.spout_tip_x - 0.08 - 0.95 * length


def rear(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Rises from all fours onto the hind legs in open floor, sniffs up high, comes back down."""
    facing = start.facing
    lo, hi = rear_hip_range(scene, facing)
    if lo > hi:
        facing = -facing
        lo, hi = rear_hip_range(scene, facing)
    hip = float(np.clip(start.centre_x - facing * HALF_SPAN * scene.mouse_length, lo, hi))
    low = float(rng.uniform(0.1, 0.45))
    high = float(rng.uniform(1.15, 1.45))
    rise = float(rng.uniform(5.0, 10.0))
    t = np.arange(n, dtype=np.float32)
    # A clip catches the rise anywhere, or the mouse already up, and ends upright; a bout in a
    # recording rises at its start and, when long enough, comes down at its end.
    begin = float(rng.uniform(-rise - 4.0, n - rise - 4.0)) if start.under_way else 0.0
    up = _smoothstep((t - begin) / rise)
    if not start.under_way and n >= 3 * rise:
        up = up * _smoothstep((n - 1 - t) / rise)
    elevation = _f32(low + (high - low) * up + 0.04 * _oscillation(rng, n, 17.0))
    curl = _full(n, float(rng.uniform(0.0, 0.2)))
    # The hip stays put while the body swings up around it.
    return _pose(
        n,
        hip_x=hip,
        hip_y=_standing_hip_y(scene, curl, elevation),
        elevation=elevation,
        facing=facing,
        head_pitch=_f32(float(rng.uniform(-0.2, 0.3)) + _wander(rng, n, 0.08, 0.2)),
        curl=curl,
        paws_at_mouth=_f32(up * float(rng.uniform(0.5, 0.9))),
    )


def hang(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Hangs from the lid grill: clinging upside down under it, or dangling from the forepaws."""
    lo, hi = centre_limits(scene)
    lo = max(lo, scene.hopper_x1 + 0.05)
    centre = float(np.clip(start.centre_x, lo, max(lo, hi)))
    sway = _oscillation(rng, n, float(rng.uniform(14.0, 24.0)))
    length = scene.mouse_length
    if rng.random() < 0.5:
        crawl = float(rng.uniform(-0.004, 0.004))
        centre_x = np.clip(centre + crawl * np.arange(n), lo, max(lo, hi))
        elevation = _f32(float(rng.uniform(-0.12, 0.12)) + 0.06 * sway)
        hip_y = scene.lid_y + length * (0.07 + BODY_HALF_HEIGHT) + 0.01 * length * sway
        period = float(rng.uniform(8.0, 12.0))
        return _pose(
            n,
            hip_x=_hip_from_centre(_f32(centre_x), _full(n, start.facing), scene),
            hip_y=_f32(hip_y),
            elevation=elevation,
            facing=start.facing,
            head_pitch=float(rng.uniform(-0.1, 0.2)),
            gait_phase=_f32(rng.uniform(0.0, 6.3) + 2.0 * np.pi * np.arange(n) / period),
            stride=0.05,
            upside_down=1.0,
            tail_hanging=1.0,
        )
    elevation = _f32(float(rng.uniform(1.15, 1.45)) + 0.1 * sway)
    _, upward = nose_offset(length, float(np.mean(elevation)), -0.2)
    hip_y = _full(n, scene.lid_y + 0.015 + upward)
    hip_x = _f32(centre - start.facing * 0.1 * length + 0.03 * length * sway)
    return _pose(
        n,
        hip_x=hip_x,
        hip_y=hip_y,
        elevation=elevation,
        facing=start.facing,
        head_pitch=-0.2,
        paws_on_lid=1.0,
        tail_hanging=1.0,
        breathing=_f32(0.02 * sway),
    )


def _reach_posture(
    scene: Scene, target_y: float, head_pitch: float, curl: float, facing: float
) -> tuple[float, float, float]:
    """Body elevation, hip height and hip-to-nose x distance that bring the nose to `target_y`.

    Raising the body lifts the nose but also rocks the hip back onto the haunches, so try a fan
    of elevations at once and take the one whose nose comes nearest.
    """
    elevations = np.linspace(0.0, 1.5, 151, dtype=np.float32)
    n = len(elevations)
    curls = _full(n, curl)
    hips_y = _standing_hip_y(scene, curls, elevations)
    trial = _pose(
        n,
        hip_x=0.5,
        hip_y=hips_y,
        elevation=elevations,
        facing=facing,
        head_pitch=head_pitch,
        curl=curls,
    )
    bones = skeleton(trial, scene)
    best = int(np.argmin(np.abs(bones.nose_y - target_y)))
    return float(elevations[best]), float(hips_y[best]), float(bones.nose_x[best] - 0.5)


def eat(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Stands up under the food hopper, gnawing: slow rhythmic head bobs, paws at the mouth."""
    target_x = float(rng.uniform(scene.hopper_x0 + 0.07, scene.hopper_x1 - 0.05))
    pitch = float(rng.uniform(-0.1, 0.2))
    curl = float(rng.uniform(0.0, 0.2))
    facing = -1.0 if rng.random() < 0.7 else 1.0
    elevation, hip_y, nose_dx = _reach_posture(
        scene, scene.hopper_bottom_y - 0.01, pitch, curl, facing
    )
    if target_x - nose_dx < WALL_MARGIN:
        # Too close to the wall to face it from this side: come at the hopper from the other.
        facing = -facing
        nose_dx = -nose_dx
    chew = _oscillation(rng, n, float(rng.uniform(5.0, 8.0)))
    return _pose(
        n,
        hip_x=_full(n, target_x - nose_dx),
        hip_y=_full(n, hip_y),
        elevation=_f32(elevation + 0.03 * chew),
        facing=facing,
        head_pitch=_f32(pitch + float(rng.uniform(0.12, 0.2)) * chew),
        curl=curl,
        paws_at_mouth=float(rng.uniform(0.7, 1.0)),
        paw_stroke=_f32(0.02 * chew),
    )


def drink(rng: np.random.Generator, scene: Scene, n: int, start: BoutStart) -> Pose:
    """Stretches up to the water spout, head tilted up, licking: quick small head pulses."""
    pitch = float(rng.uniform(-0.35, -0.15))
    curl = float(rng.uniform(0.0, 0.15))
    elevation, hip_y, nose_dx = _reach_posture(scene, scene.spout_tip_y + 0.012, pitch, curl, 1.0)
    lick = _oscillation(rng, n, float(rng.uniform(3.5, 5.0)))
    return _pose(
        n,
        hip_x=_full(n, scene.spout_tip_x - 0.01 - nose_dx),
        hip_y=_full(n, hip_y),
        elevation=_full(n, elevation),
        facing=1.0,
        head_pitch=_f32(pitch + float(rng.uniform(0.06, 0.1)) * lick),
        curl=curl,
        paws_at_mouth=float(rng.uniform(0.0, 0.35)),
    )


BEHAVIOURS: dict[str, Behaviour] = {
    "drink": drink,
    "eat": eat,
    "groom": groom,
    "hang": hang,
    "micromovement": micromovement,
    "rear": rear,
    "rest": rest,
    "walk": walk,
}


def place_for(label: str, scene: Scene) -> float | None:
    """Mid-body x where a bout of `label` happens, for behaviours tied to a place."""
    length = scene.mouse_length
    if label == "eat":
        return (scene.hopper_x0 + scene.hopper_x1) / 2.0 + 0.3 * length
    if label == "drink":
        return scene.spout_tip_x - 0.5 * length
    if label == "rear":
        lo, hi = rear_hip_range(scene, -1.0)
        return (lo + hi) / 2.0 - HALF_SPAN * length
    return None


def random_start(rng: np.random.Generator, scene: Scene, label: str, frames: int) -> BoutStart:
    """A starting place for a stand-alone clip; walks are placed so the clip never hits a wall."""
    facing = 1.0 if rng.random() < 0.5 else -1.0
    lo, hi = centre_limits(scene)
    if label == "rear":
        hip_lo, hip_hi = rear_hip_range(scene, facing)
        if hip_lo > hip_hi:
            facing = -facing
            hip_lo, hip_hi = rear_hip_range(scene, facing)
        # Mid-body x whose hip falls in the range.
        lo = hip_lo + facing * HALF_SPAN * scene.mouse_length
        hi = max(lo, hip_hi + facing * HALF_SPAN * scene.mouse_length)
    if label == "walk":
        room = frames * 0.022
        if facing > 0:
            hi = max(lo, hi - room)
        else:
            lo = min(hi, lo + room)
    return BoutStart(centre_x=float(rng.uniform(lo, hi)), facing=facing, under_way=True)
