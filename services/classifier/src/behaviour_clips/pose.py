"""A mouse's posture frame by frame, and the body parts that posture puts where.

A pose is a handful of joint parameters per frame (hip position, body elevation, head pitch,
curl, where the forepaws are). `skeleton` turns it into body-part positions and sizes, as
fractions of the frame, that the renderer draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from behaviour_clips.scene import FloatArray, Scene

# Body proportions as fractions of the scene's mouse length (hip to nose).
BODY_HALF_LENGTH = 0.36
BODY_HALF_HEIGHT = 0.17
HEAD_HALF_LENGTH = 0.15
HEAD_HALF_HEIGHT = 0.10
NECK_DISTANCE = 0.66
"""Hip to neck along the body axis."""
NOSE_REACH = NECK_DISTANCE + 0.13 + HEAD_HALF_LENGTH
"""Hip to nose of a straight mouse: how far up or ahead it can reach."""


@dataclass(frozen=True, slots=True)
class Pose:
    """Per-frame posture; every field has one value per frame."""

    hip_x: FloatArray
    hip_y: FloatArray
    elevation: FloatArray
    """Angle of the body axis above the horizontal, radians (0 on all fours, ~1.4 upright)."""
    facing: FloatArray
    """+1 facing right, -1 facing left."""
    head_pitch: FloatArray
    """Head bent down from the body axis, radians."""
    curl: FloatArray
    """0 stretched out, 1 curled into a ball (resting)."""
    paws_at_mouth: FloatArray
    """0 forepaws on the support, 1 held up at the mouth."""
    paws_on_lid: FloatArray
    """1 when the forepaws grip the lid above the head (hanging from it)."""
    paw_stroke: FloatArray
    """Forepaw offset along the face, fraction of mouse length (grooming strokes)."""
    gait_phase: FloatArray
    """Step cycle in radians; legs swing with it."""
    stride: FloatArray
    """How far the legs swing, fraction of mouse length (0 when still)."""
    upside_down: FloatArray
    """1 when the back faces the floor (clinging under the lid)."""
    tail_hanging: FloatArray
    """0 tail lying on the floor, 1 hanging straight down."""
    breathing: FloatArray
    """Relative change of body height from breathing."""

    @property
    def frames(self) -> int:
        return int(self.hip_x.shape[0])


@dataclass(frozen=True, slots=True)
class Skeleton:
    """Positions (frame fractions) and sizes of each body part, per frame."""

    body_x: FloatArray
    body_y: FloatArray
    body_rx: FloatArray
    body_ry: FloatArray
    body_angle: FloatArray
    """Image-space angle of the body's long axis, radians (y points down)."""
    head_x: FloatArray
    head_y: FloatArray
    head_angle: FloatArray
    head_rx: float
    head_ry: float
    nose_x: FloatArray
    nose_y: FloatArray
    ear_x: FloatArray
    ear_y: FloatArray
    haunch_x: FloatArray
    haunch_y: FloatArray
    hind_foot_x: FloatArray
    hind_foot_y: FloatArray
    chest_x: FloatArray
    chest_y: FloatArray
    paw_x: FloatArray
    paw_y: FloatArray
    other_paw_x: FloatArray
    other_paw_y: FloatArray
    tail_mid_x: FloatArray
    tail_mid_y: FloatArray
    tail_end_x: FloatArray
    tail_end_y: FloatArray


def nose_offset(mouse_length: float, elevation: float, head_pitch: float) -> tuple[float, float]:
    """(forward, upward) distance from hip to nose for a straight, uncurled mouse."""
    head_elevation = elevation - head_pitch
    forward = NECK_DISTANCE * np.cos(elevation) + (NOSE_REACH - NECK_DISTANCE) * np.cos(
        head_elevation
    )
    upward = NECK_DISTANCE * np.sin(elevation) + (NOSE_REACH - NECK_DISTANCE) * np.sin(
        head_elevation
    )
    return float(forward * mouse_length), float(upward * mouse_length)


def skeleton(pose: Pose, scene: Scene) -> Skeleton:
    """Lay the body parts out for every frame of `pose`."""
    length = scene.mouse_length
    facing = pose.facing
    # Upside down flips which side of the body axis is the back.
    back_side = 1.0 - 2.0 * pose.upside_down
    axis_x = facing * np.cos(pose.elevation)
    axis_y = -np.sin(pose.elevation)
    back_x = back_side * (-facing * np.sin(pose.elevation))
    back_y = back_side * (-np.cos(pose.elevation))

    curl = pose.curl
    body_rx = length * BODY_HALF_LENGTH * (1.0 - 0.3 * curl)
    body_ry = length * BODY_HALF_HEIGHT * (1.0 + 0.55 * curl) * (1.0 + pose.breathing)
    body_x = pose.hip_x + axis_x * body_rx + back_x * 0.05 * length * curl
    body_y = pose.hip_y + axis_y * body_rx + back_y * 0.05 * length * curl

    # A curled mouse tucks its head down against its belly.
    neck = 2.0 * body_rx * (NECK_DISTANCE / (2.0 * BODY_HALF_LENGTH))
    neck_x = pose.hip_x + axis_x * neck
    neck_y = pose.hip_y + axis_y * neck
    head_elevation = pose.elevation - back_side * (pose.head_pitch + 1.1 * curl)
    head_axis_x = facing * np.cos(head_elevation)
    head_axis_y = -np.sin(head_elevation)
    head_back_x = back_side * (-facing * np.sin(head_elevation))
    head_back_y = back_side * (-np.cos(head_elevation))
    head_distance = length * (0.13 - 0.08 * curl)
    head_x = neck_x + head_axis_x * head_distance
    head_y = neck_y + head_axis_y * head_distance
    ear_x = head_x - head_axis_x * 0.06 * length + head_back_x * 0.09 * length
    ear_y = head_y - head_axis_y * 0.06 * length + head_back_y * 0.09 * length

    # The support is what the feet stand on: the floor, or the lid when clinging upside down.
    support_y = np.where(pose.upside_down > 0.5, scene.lid_y, scene.floor_y)
    swing = pose.stride * length * np.sin(pose.gait_phase)

    haunch_x = pose.hip_x + axis_x * 0.14 * length - back_x * 0.04 * length
    haunch_y = pose.hip_y + axis_y * 0.14 * length - back_y * 0.04 * length
    hind_foot_x = haunch_x + facing * swing
    # Off the ground (hanging from the lid) the hind feet dangle below the haunch.
    hind_foot_y = np.where(
        pose.upside_down > 0.5, scene.lid_y, np.minimum(scene.floor_y, haunch_y + 0.14 * length)
    )

    chest_x = neck_x - back_x * 0.1 * length - axis_x * 0.05 * length
    chest_y = neck_y - back_y * 0.1 * length - axis_y * 0.05 * length
    mouth_x = head_x - head_back_x * 0.09 * length + head_axis_x * 0.05 * length
    mouth_y = head_y - head_back_y * 0.09 * length + head_axis_y * 0.05 * length
    stroke_x = mouth_x + head_back_x * pose.paw_stroke * length
    stroke_y = mouth_y + head_back_y * pose.paw_stroke * length
    ground_x = chest_x + facing * 0.04 * length
    raised = pose.paws_at_mouth
    paw_x = ground_x * (1.0 - raised) + stroke_x * raised - facing * swing * (1.0 - raised)
    paw_y = support_y * (1.0 - raised) + stroke_y * raised
    grip = pose.paws_on_lid
    paw_x = paw_x * (1.0 - grip) + (chest_x + facing * 0.06 * length) * grip
    paw_y = paw_y * (1.0 - grip) + scene.lid_y * grip
    other_paw_x = paw_x + facing * (swing * 2.0 * (1.0 - raised) + 0.02 * length * raised)
    other_paw_y = paw_y + 0.015 * length * raised * (1.0 - grip)

    # The tail trails behind on the floor, or hangs down when the mouse is off the ground.
    hang = pose.tail_hanging
    trail_mid_x = pose.hip_x - facing * 0.38 * length
    trail_mid_y = np.minimum(pose.hip_y + 0.12 * length, scene.floor_y - 0.006)
    trail_end_x = pose.hip_x - facing * 0.8 * length
    trail_end_y = np.full_like(pose.hip_y, scene.floor_y - 0.004)
    sway = 0.05 * length * np.sin(pose.gait_phase * 0.5)
    hang_mid_x = pose.hip_x - facing * 0.04 * length
    hang_mid_y = pose.hip_y + 0.4 * length
    hang_end_x = pose.hip_x + sway
    hang_end_y = np.minimum(pose.hip_y + 0.8 * length, scene.floor_y)

    def mix(trailing: FloatArray, hanging: FloatArray) -> FloatArray:
        return np.asarray(trailing * (1.0 - hang) + hanging * hang, dtype=np.float32)

    def f32(values: FloatArray) -> FloatArray:
        return values.astype(np.float32)

    return Skeleton(
        body_x=f32(body_x),
        body_y=f32(body_y),
        body_rx=f32(body_rx),
        body_ry=f32(body_ry),
        body_angle=f32(np.arctan2(axis_y, axis_x)),
        head_x=f32(head_x),
        head_y=f32(head_y),
        head_angle=f32(np.arctan2(head_axis_y, head_axis_x)),
        head_rx=length * HEAD_HALF_LENGTH,
        head_ry=length * HEAD_HALF_HEIGHT,
        nose_x=f32(head_x + head_axis_x * length * HEAD_HALF_LENGTH),
        nose_y=f32(head_y + head_axis_y * length * HEAD_HALF_LENGTH),
        ear_x=f32(ear_x),
        ear_y=f32(ear_y),
        haunch_x=f32(haunch_x),
        haunch_y=f32(haunch_y),
        hind_foot_x=f32(hind_foot_x),
        hind_foot_y=f32(hind_foot_y),
        chest_x=f32(chest_x),
        chest_y=f32(chest_y),
        paw_x=f32(paw_x),
        paw_y=f32(paw_y),
        other_paw_x=f32(other_paw_x),
        other_paw_y=f32(other_paw_y),
        tail_mid_x=mix(trail_mid_x, hang_mid_x),
        tail_mid_y=mix(trail_mid_y, hang_mid_y),
        tail_end_x=mix(trail_end_x, hang_end_x),
        tail_end_y=mix(trail_end_y, hang_end_y),
    )
