"""Clips as the image files a client uploads: one PNG or JPEG per frame."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from behaviour_clips.render import UInt8Array


def _frame_image(frame: UInt8Array) -> Image.Image:
    if frame.ndim == 2:
        return Image.fromarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return Image.fromarray(frame)
    raise ValueError(f"a frame must be (h, w) grayscale or (h, w, 3) RGB, got {frame.shape}")


def _encode(clip: UInt8Array, image_format: str, **options: int) -> list[bytes]:
    if clip.dtype != np.uint8:
        raise ValueError(f"clip must be uint8, got {clip.dtype}")
    encoded = []
    for frame in clip:
        buffer = io.BytesIO()
        _frame_image(frame).save(buffer, format=image_format, **options)
        encoded.append(buffer.getvalue())
    return encoded


def clip_to_png_bytes(clip: UInt8Array, *, compress_level: int = 6) -> list[bytes]:
    """Lossless PNG files, one per frame, of a (frames, h, w) or (frames, h, w, 3) clip.

    `compress_level` (0-9) trades file size for encoding time; the pixels are the same.
    """
    if not 0 <= compress_level <= 9:
        raise ValueError(f"PNG compress_level must be within 0..9, got {compress_level}")
    return _encode(clip, "PNG", compress_level=compress_level)


def clip_to_jpeg_bytes(clip: UInt8Array, quality: int = 75) -> list[bytes]:
    """JPEG files, one per frame, at the given quality (1-95)."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be within 1..95, got {quality}")
    return _encode(clip, "JPEG", quality=quality)


def to_rgb(clip: UInt8Array) -> UInt8Array:
    """The grayscale clip as RGB frames (frames, h, w, 3), the way a colour camera delivers it."""
    return np.repeat(clip[..., None], 3, axis=-1)
