"""The home cage a clip is filmed in: layout, colours, lighting and camera defects, drawn once.

Positions are fractions of the frame (x to the right, y downwards), so one scene renders at any
resolution. The layout is canonical (food hopper on the left, water spout on the right); a
mirrored scene is flipped as a whole after drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything about a clip that does not depend on what the mouse is doing."""

    floor_y: float
    lid_y: float
    mouse_length: float
    """Hip to nose of an outstretched mouse; every body part is sized from it."""
    hopper_x0: float
    hopper_x1: float
    hopper_bottom_y: float
    spout_tip_x: float
    spout_tip_y: float
    spout_top_x: float
    mirrored: bool
    wall_gray: float
    bedding_gray: float
    lid_gray: float
    mouse_gray: float
    gain: float
    gradient_x: float
    gradient_y: float
    vignette: float
    flicker: float
    """Standard deviation of the frame-to-frame brightness change (mains-powered lights)."""
    noise_sigma: float
    blur: bool
    jpeg_quality: int | None
    """Quality of the lossy compression the clip went through, or None for a clean clip."""
    bedding_waves: tuple[tuple[float, float, float, float], ...]
    """(amplitude, x frequency, y frequency, phase) of the sinusoids that texture the bedding."""


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random cage, mouse size, lighting and camera."""
    floor_y = float(rng.uniform(0.78, 0.88))
    mouse_length = float(rng.uniform(0.3, 0.38))
    hopper_x0 = float(rng.uniform(0.03, 0.08))
    spout_tip_x = float(rng.uniform(0.74, 0.84))
    wall_gray = float(rng.uniform(0.5, 0.85))
    waves = tuple(
        (
            float(rng.uniform(0.01, 0.035)),
            float(rng.uniform(8.0, 40.0)),
            float(rng.uniform(8.0, 40.0)),
            float(rng.uniform(0.0, 2.0 * np.pi)),
        )
        for _ in range(5)
    )
    return Scene(
        floor_y=floor_y,
        lid_y=float(rng.uniform(0.07, 0.13)),
        mouse_length=mouse_length,
        hopper_x0=hopper_x0,
        hopper_x1=hopper_x0 + float(rng.uniform(0.16, 0.24)),
        # Fixtures hang at heights a mouse of this size can reach: the hopper only when fully
        # upright, the spout when half raised. That reach is what makes eat and drink postures.
        hopper_bottom_y=floor_y - mouse_length * float(rng.uniform(0.82, 0.94)),
        spout_tip_x=spout_tip_x,
        spout_tip_y=floor_y - mouse_length * float(rng.uniform(0.66, 0.78)),
        spout_top_x=spout_tip_x + float(rng.uniform(0.04, 0.1)),
        mirrored=bool(rng.random() < 0.5),
        wall_gray=wall_gray,
        bedding_gray=wall_gray + float(rng.uniform(-0.12, 0.08)),
        lid_gray=float(rng.uniform(0.22, 0.42)),
        mouse_gray=float(rng.uniform(0.06, 0.26)),
        gain=float(rng.uniform(0.75, 1.15)),
        gradient_x=float(rng.uniform(-0.25, 0.25)),
        gradient_y=float(rng.uniform(-0.2, 0.2)),
        vignette=float(rng.uniform(0.0, 0.3)),
        flicker=float(rng.uniform(0.0, 0.015)),
        noise_sigma=float(rng.uniform(0.006, 0.035)),
        blur=bool(rng.random() < 0.3),
        jpeg_quality=int(rng.integers(30, 86)) if rng.random() < 0.25 else None,
        bedding_waves=waves,
    )


def pixel_centres(size: int) -> FloatArray:
    """Coordinates of pixel centres as fractions of the frame."""
    return ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)


def _soft_step(distance_px: FloatArray) -> FloatArray:
    """Coverage of a pixel whose centre lies `distance_px` inside an edge (one-pixel ramp)."""
    return np.asarray(np.clip(distance_px + 0.5, 0.0, 1.0), dtype=np.float32)


def render_background(scene: Scene, size: int) -> FloatArray:
    """The empty cage in canonical layout, before lighting: shape (size, size), values in [0, 1]."""
    xs = pixel_centres(size)[None, :]
    ys = pixel_centres(size)[:, None]
    image = np.full((size, size), scene.wall_gray, dtype=np.float32)

    bedding = np.full((size, size), scene.bedding_gray, dtype=np.float32)
    for amplitude, fx, fy, phase in scene.bedding_waves:
        bedding += amplitude * np.sin(fx * xs + fy * ys + phase).astype(np.float32)
    floor_cover = _soft_step((ys - scene.floor_y) * size)
    image = image * (1.0 - floor_cover) + bedding * floor_cover
    # The far edge of the bedding casts a thin dark line along the floor.
    image -= 0.08 * np.clip(1.0 - np.abs(ys - scene.floor_y) * size, 0.0, 1.0)

    # Lid: a solid rim with the wire grill above it.
    grill = scene.lid_gray + 0.25 * (np.sin(xs * 2.0 * np.pi / 0.045) > 0.55)
    lid_band = np.where(ys < scene.lid_y - 0.035, grill, scene.lid_gray * 0.8)
    lid_cover = _soft_step((scene.lid_y - ys) * size)
    image = image * (1.0 - lid_cover) + lid_band * lid_cover

    # Food hopper hanging from the lid: a wire basket with pellets behind the bars.
    inside_x = np.minimum(xs - scene.hopper_x0, scene.hopper_x1 - xs) * size
    inside_y = np.minimum(ys - scene.lid_y, scene.hopper_bottom_y - ys) * size
    hopper_cover = _soft_step(np.minimum(inside_x, inside_y))
    pellets = 0.12 * (np.sin(xs * 61.0) * np.sin(ys * 53.0) > 0.35)
    bars = 0.18 * (np.sin((xs + ys) * 2.0 * np.pi / 0.05) > 0.6)
    basket = scene.lid_gray + 0.08 + pellets - bars
    rim = np.abs(ys - scene.hopper_bottom_y) * size < 1.2
    basket = np.where(rim, scene.lid_gray * 0.6, basket)
    image = image * (1.0 - hopper_cover) + basket * hopper_cover

    # Water spout: a metal tube from the lid down to the tip, with a highlight along it.
    spout = _capsule_distance(
        xs, ys, scene.spout_top_x, scene.lid_y - 0.02, scene.spout_tip_x, scene.spout_tip_y
    )
    tube_cover = _soft_step((0.022 - spout) * size)
    highlight = _soft_step((0.007 - spout) * size)
    image = image * (1.0 - tube_cover) + (scene.lid_gray * 0.9) * tube_cover
    image += 0.15 * highlight
    return np.asarray(image, dtype=np.float32)


def _capsule_distance(
    xs: FloatArray, ys: FloatArray, x0: float, y0: float, x1: float, y1: float
) -> FloatArray:
    """Distance from each point to the segment (x0, y0)-(x1, y1), in frame fractions."""
    dx, dy = x1 - x0, y1 - y0
    along = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(xs - (x0 + along * dx), ys - (y0 + along * dy)).astype(np.float32)


def lighting_map(scene: Scene, size: int) -> FloatArray:
    """Multiplicative illumination over the frame: gain, a linear gradient and vignetting."""
    xs = pixel_centres(size)[None, :] - 0.5
    ys = pixel_centres(size)[:, None] - 0.5
    light = scene.gain * (1.0 + scene.gradient_x * xs + scene.gradient_y * ys)
    light = light * (1.0 - scene.vignette * 2.0 * (xs * xs + ys * ys))
    return light.astype(np.float32)
