"""Draws a pose into the cage and films it: soft-edged body parts, lighting, blur, sensor noise
and lossy compression, ending in 8-bit grayscale frames."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from behaviour_clips.pose import Pose, skeleton
from behaviour_clips.scene import FloatArray, Scene, lighting_map, render_background

UInt8Array = npt.NDArray[np.uint8]


def _column(values: FloatArray | float, scale: float) -> FloatArray:
    """Per-frame values as a (frames, 1, 1) array in pixels, ready to broadcast over a window."""
    return (np.asarray(values, dtype=np.float32) * scale).reshape(-1, 1, 1)


Window = tuple[slice, slice]


@dataclass(frozen=True, slots=True)
class Shape:
    """How much of each pixel a body part covers, over the window that holds it in every frame."""

    window: Window
    coverage: FloatArray


class _Canvas:
    """The frame stack, drawn on one body part at a time.

    Each part is computed only inside the rectangle it sweeps over the clip, which keeps a clip
    to a few milliseconds.
    """

    def __init__(self, frames: FloatArray) -> None:
        self.pixels = frames
        self.size = frames.shape[1]
        self.centres = np.arange(self.size, dtype=np.float32) + 0.5

    def _window(
        self, xs: list[FloatArray], ys: list[FloatArray], reach: float
    ) -> tuple[Window, FloatArray, FloatArray] | None:
        """The pixel rectangle around all points `xs`, `ys` (frame fractions) plus `reach`."""
        s = self.size
        left = max(int(np.floor(min(float(x.min()) for x in xs) * s - reach)), 0)
        right = min(int(np.ceil(max(float(x.max()) for x in xs) * s + reach)) + 1, s)
        top = max(int(np.floor(min(float(y.min()) for y in ys) * s - reach)), 0)
        bottom = min(int(np.ceil(max(float(y.max()) for y in ys) * s + reach)) + 1, s)
        if left >= right or top >= bottom:
            return None
        grid_x = self.centres[left:right].reshape(1, 1, -1)
        grid_y = self.centres[top:bottom].reshape(1, -1, 1)
        return (slice(top, bottom), slice(left, right)), grid_x, grid_y

    def paint(self, shape: Shape | None, gray: float) -> None:
        if shape is None:
            return
        rows, columns = shape.window
        region = self.pixels[:, rows, columns]
        region *= 1.0 - shape.coverage
        region += gray * shape.coverage

    def darken(self, shape: Shape | None, strength: float) -> None:
        if shape is None:
            return
        rows, columns = shape.window
        self.pixels[:, rows, columns] *= 1.0 - strength * shape.coverage

    def ellipse(
        self,
        x: FloatArray,
        y: FloatArray,
        rx: FloatArray | float,
        ry: FloatArray | float,
        angle: FloatArray | float,
    ) -> Shape | None:
        """A rotated ellipse with a one-pixel soft rim."""
        s = float(self.size)
        reach = float(np.max(np.maximum(rx, ry))) * s + 1.0
        found = self._window([x], [y], reach)
        if found is None:
            return None
        window, grid_x, grid_y = found
        dx = grid_x - _column(x, s)
        dy = grid_y - _column(y, s)
        cos = np.cos(_column(angle, 1.0))
        sin = np.sin(_column(angle, 1.0))
        u = dx * cos + dy * sin
        v = dy * cos - dx * sin
        inv_a2 = 1.0 / np.square(_column(rx, s))
        inv_b2 = 1.0 / np.square(_column(ry, s))
        uu = u * u * inv_a2
        vv = v * v * inv_b2
        # Distance to the rim from the implicit function and its gradient: exact on the rim,
        # which is all a one-pixel ramp needs.
        gradient = 2.0 * np.sqrt(uu * inv_a2 + vv * inv_b2) + 1e-6
        coverage = np.clip((1.0 - uu - vv) / gradient + 0.5, 0.0, 1.0, dtype=np.float32)
        return Shape(window, coverage)

    def segment(
        self, x0: FloatArray, y0: FloatArray, x1: FloatArray, y1: FloatArray, radius: float
    ) -> Shape | None:
        """A thick line with round ends (a limb, the tail)."""
        s = float(self.size)
        found = self._window([x0, x1], [y0, y1], radius * s + 1.0)
        if found is None:
            return None
        window, grid_x, grid_y = found
        ax, ay = _column(x0, s), _column(y0, s)
        dx, dy = _column(x1, s) - ax, _column(y1, s) - ay
        px, py = grid_x - ax, grid_y - ay
        along = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
        ex = px - along * dx
        ey = py - along * dy
        coverage = np.clip(radius * s + 0.5 - np.sqrt(ex * ex + ey * ey), 0.0, 1.0)
        return Shape(window, coverage)


def draw_mouse(frames: FloatArray, pose: Pose, scene: Scene) -> None:
    """Paint the mouse of `pose` into `frames` (frames, size, size), back parts first."""
    bones = skeleton(pose, scene)
    canvas = _Canvas(frames)
    length = scene.mouse_length
    fur = scene.mouse_gray

    # A soft shadow on the bedding under a mouse that is on the floor.
    if float(pose.tail_hanging.max()) < 0.5:
        floor = np.full_like(bones.body_x, scene.floor_y + 0.012)
        canvas.darken(canvas.ellipse(bones.body_x, floor, bones.body_rx * 1.2, 0.022, 0.0), 0.3)

    tail_gray = fur + 0.22
    canvas.paint(
        canvas.segment(
            bones.haunch_x, bones.haunch_y, bones.tail_mid_x, bones.tail_mid_y, 0.025 * length
        ),
        tail_gray,
    )
    canvas.paint(
        canvas.segment(
            bones.tail_mid_x, bones.tail_mid_y, bones.tail_end_x, bones.tail_end_y, 0.016 * length
        ),
        tail_gray,
    )
    canvas.paint(
        canvas.segment(
            bones.haunch_x, bones.haunch_y, bones.hind_foot_x, bones.hind_foot_y, 0.04 * length
        ),
        fur + 0.05,
    )
    canvas.paint(
        canvas.ellipse(bones.body_x, bones.body_y, bones.body_rx, bones.body_ry, bones.body_angle),
        fur,
    )
    canvas.paint(
        canvas.ellipse(
            bones.haunch_x, bones.haunch_y, 0.13 * length, 0.1 * length, bones.body_angle
        ),
        fur + 0.03,
    )
    canvas.paint(
        canvas.ellipse(bones.head_x, bones.head_y, bones.head_rx, bones.head_ry, bones.head_angle),
        fur + 0.02,
    )
    canvas.paint(
        canvas.ellipse(bones.ear_x, bones.ear_y, 0.055 * length, 0.055 * length, 0.0),
        fur + 0.12,
    )
    for paw_x, paw_y in ((bones.other_paw_x, bones.other_paw_y), (bones.paw_x, bones.paw_y)):
        canvas.paint(
            canvas.segment(bones.chest_x, bones.chest_y, paw_x, paw_y, 0.032 * length),
            fur + 0.06,
        )


def _blur(frames: FloatArray) -> FloatArray:
    """A 3x3 binomial blur (an out-of-focus camera), edges repeated."""
    padded = np.pad(frames, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = padded[:, :-2, :] + 2.0 * padded[:, 1:-1, :] + padded[:, 2:, :]
    return ((rows[:, :, :-2] + 2.0 * rows[:, :, 1:-1] + rows[:, :, 2:]) / 16.0).astype(np.float32)


def jpeg_round_trip(frames: UInt8Array, quality: int) -> UInt8Array:
    """The frames after lossy compression, as a camera or a video pipeline would leave them.

    Frames are stacked into tall images: JPEG codes 8x8 blocks independently, so this matches
    compressing each frame on its own when the frame height is a multiple of 8, at a fraction of
    the cost.
    """
    count, height, width = frames.shape
    per_image = max(1, 60_000 // height)  # JPEG images are at most 65,535 pixels high
    out = np.empty_like(frames)
    for first in range(0, count, per_image):
        chunk = frames[first : first + per_image]
        buffer = io.BytesIO()
        Image.fromarray(chunk.reshape(-1, width)).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[first : first + len(chunk)] = np.asarray(decoded.convert("L")).reshape(
                len(chunk), height, width
            )
    return out


def film(poses: list[Pose], scene: Scene, size: int, camera_rng: np.random.Generator) -> UInt8Array:
    """Render consecutive bouts into one (frames, size, size) uint8 stack through the camera."""
    total = sum(pose.frames for pose in poses)
    background = render_background(scene, size)
    frames = np.empty((total, size, size), dtype=np.float32)
    frames[:] = background
    start = 0
    for pose in poses:
        draw_mouse(frames[start : start + pose.frames], pose, scene)
        start += pose.frames
    if scene.mirrored:
        frames = np.ascontiguousarray(frames[:, :, ::-1])
    flicker = 1.0 + camera_rng.normal(0.0, scene.flicker, total).astype(np.float32)
    frames *= lighting_map(scene, size)
    frames *= flicker.reshape(-1, 1, 1)
    if scene.blur:
        frames = _blur(frames)
    noise = camera_rng.standard_normal(frames.shape, dtype=np.float32)
    noise *= scene.noise_sigma
    frames += noise
    frames *= 255.0
    frames += 0.5
    np.clip(frames, 0.0, 255.0, out=frames)
    pixels = frames.astype(np.uint8)
    if scene.jpeg_quality is not None:
        pixels = jpeg_round_trip(pixels, scene.jpeg_quality)
    return pixels
