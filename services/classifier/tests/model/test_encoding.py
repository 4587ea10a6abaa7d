"""Clips as uploadable image files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from behaviour_clips import clip_to_jpeg_bytes, clip_to_png_bytes, generate_clip, to_rgb


def _decode(files: list[bytes]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(data))) for data in files])


def test_png_frames_are_lossless() -> None:
    clip = generate_clip("groom", 2)
    files = clip_to_png_bytes(clip)
    assert len(files) == 24
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in files)
    assert np.array_equal(_decode(files), clip)
    assert np.array_equal(_decode(clip_to_png_bytes(clip, compress_level=1)), clip)


def test_jpeg_frames_are_close_and_smaller() -> None:
    clip = generate_clip("groom", 2)
    files = clip_to_jpeg_bytes(clip, quality=75)
    assert all(data.startswith(b"\xff\xd8") for data in files)
    decoded = _decode(files).astype(np.int16)
    assert decoded.shape == clip.shape
    assert 0.0 < float(np.abs(decoded - clip).mean()) < 6.0
    assert sum(map(len, files)) < sum(map(len, clip_to_png_bytes(clip)))


def test_rgb_frames_repeat_the_gray_level() -> None:
    clip = generate_clip("rest", 1, frames=3)
    rgb = to_rgb(clip)
    assert rgb.shape == (3, 64, 64, 3)
    for channel in range(3):
        assert np.array_equal(rgb[..., channel], clip)
    decoded = _decode(clip_to_png_bytes(rgb))
    assert decoded.shape == (3, 64, 64, 3)
    assert np.array_equal(decoded, rgb)


@pytest.mark.parametrize("quality", [0, 96])
def test_jpeg_quality_out_of_range_is_refused(quality: int) -> None:
    with pytest.raises(ValueError, match="quality"):
        clip_to_jpeg_bytes(generate_clip("rest", 1, frames=1), quality=quality)


def test_non_uint8_clip_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        clip_to_png_bytes(np.zeros((2, 8, 8), dtype=np.float32))
