"""Frames and multipart uploads for tests: real encoded images made with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def gray_frame(value: int, size: tuple[int, int] = (64, 64), mode: str = "L") -> Image.Image:
    """A uniform frame with a faint deterministic texture, so encoders do real work."""
    rng = np.random.default_rng(value)
    noise = rng.integers(-3, 4, size=(size[1], size[0]))
    pixels = np.clip(value + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)  # mode "L"
    return image if mode == "L" else image.convert(mode)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def sequence(
    value: int, count: int = 24, fmt: str = "PNG", size: tuple[int, int] = (64, 64), mode: str = "L"
) -> list[bytes]:
    """``count`` encoded frames of brightness ``value``."""
    return [encode(gray_frame(value, size, mode), fmt) for _ in range(count)]


def files(
    field: str, frames: list[bytes], ext: str = "png"
) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx ``files=`` entries for a multipart upload of ``frames`` under ``field``."""
    content_type = {"png": "image/png", "jpg": "image/jpeg"}.get(ext, "application/octet-stream")
    return [(field, (f"frame_{i:02d}.{ext}", data, content_type)) for i, data in enumerate(frames)]
