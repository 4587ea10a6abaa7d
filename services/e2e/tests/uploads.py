"""What the suite uploads: behaviour clips as image files, and hostile frames built byte by byte."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from behaviour_clips import clip_to_jpeg_bytes, clip_to_png_bytes, generate_clip, to_rgb

#: httpx ``files=`` entries: (field, (filename, bytes, content type)).
MultipartFiles = list[tuple[str, tuple[str, bytes, str]]]
Clip = npt.NDArray[np.uint8]

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "bmp": "image/bmp",
    "ppm": "image/x-portable-pixmap",
}

#: How a clip reaches the service: lossless PNG at the model's size, JPEG at quality 75, or RGB
#: PNG filmed at twice the size, which the service must convert to grayscale and resize.
ENCODINGS = ("png", "jpeg_q75", "rgb_2x")


@functools.cache
def clip(label: str, seed: int, frames: int = 24, size: int = 64) -> Clip:
    """The generator's clip of ``label`` (read-only: it is shared between tests)."""
    pixels = generate_clip(label, seed, frames=frames, size=size)
    pixels.setflags(write=False)
    return pixels


@functools.cache
def clip_files(
    label: str, seed: int, encoding: str = "png", frames: int = 24, size: int = 64
) -> tuple[bytes, ...]:
    """One encoded image file per frame of the clip, as a client would upload them."""
    if encoding == "png":
        return tuple(clip_to_png_bytes(clip(label, seed, frames, size)))
    if encoding == "jpeg_q75":
        return tuple(clip_to_jpeg_bytes(clip(label, seed, frames, size), quality=75))
    if encoding == "rgb_2x":
        return tuple(clip_to_png_bytes(to_rgb(clip(label, seed, frames, 2 * size))))
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def extension(encoding: str) -> str:
    return "jpg" if encoding.startswith("jpeg") else "png"


def multipart(field: str, frames: Sequence[bytes], ext: str = "png") -> MultipartFiles:
    """Frames as multipart file parts named ``frame_00.<ext>``, ``frame_01.<ext>``, ..."""
    content_type = CONTENT_TYPES.get(ext, "application/octet-stream")
    return [(field, (f"frame_{i:02d}.{ext}", data, content_type)) for i, data in enumerate(frames)]


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def ppm_frame(size: int = 64) -> bytes:
    """A real image in a format the service does not take (Netpbm PPM)."""
    return encode(Image.new("RGB", (size, size), (90, 90, 90)), "PPM")


def noise_bmp(at_least_bytes: int) -> bytes:
    """An uncompressed RGB BMP of noise, at least ``at_least_bytes`` long: a real, large image."""
    side = int((at_least_bytes / 3) ** 0.5) + 1
    pixels = np.random.default_rng(0).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "BMP")
    assert len(data) >= at_least_bytes
    return data


def png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose header (IHDR, CRC fixed up) claims ``width`` x ``height`` pixels.

    Decoding it would need width * height bytes of memory; the service must refuse it from the
    header alone.
    """
    data = bytearray(encode(Image.new("L", (8, 8), 128), "PNG"))
    ihdr = 8 + 4  # after the signature and the chunk's length: b"IHDR", width, height, ...
    struct.pack_into(">II", data, ihdr + 4, width, height)
    struct.pack_into(">I", data, ihdr + 4 + 13, zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13])))
    return bytes(data)


@dataclass(frozen=True, slots=True)
class ClipUploads:
    """Clips cut to the served model's sequence length and frame size."""

    frames: int
    size: int

    def pixels(self, label: str, seed: int) -> Clip:
        return clip(label, seed, self.frames, self.size)

    def files(self, label: str, seed: int, encoding: str = "png") -> tuple[bytes, ...]:
        return clip_files(label, seed, encoding, self.frames, self.size)

    def multipart(self, field: str, label: str, seed: int, encoding: str = "png") -> MultipartFiles:
        return multipart(field, self.files(label, seed, encoding), extension(encoding))
