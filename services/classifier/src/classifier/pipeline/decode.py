"""Stage 2, decode frames: image bytes to uint8 arrays in the manifest's size and colour mode.

Pillow is the reference decoder and the universal path. A PNG that already has the model's size
and colour mode (8-bit grayscale for "L", 8-bit RGB for "RGB") takes a fast path through libspng
instead: PNG is lossless, so the pixels are identical, and for 64x64 frames libspng decodes
several times faster than Pillow's Python-level chunk reader (docs/benchmarks.md). Anything the
fast path does not accept, or fails on, goes through Pillow, which also words every error.
Every frame's header is checked against the pixel limit before any pixel data is decoded, so a
decompression bomb costs only its header.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyspng
from PIL import Image, UnidentifiedImageError

from classifier.core.errors import (
    ContentTooLargeError,
    UndecodableFrameError,
    UnsupportedFrameFormatError,
)
from classifier.model.manifest import InputSpec
from classifier.pipeline.upload import UploadedFrame

#: Pillow format names accepted for frames (GIF: its first frame only).
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

PixelArray = npt.NDArray[np.uint8]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR colour types whose 8-bit pixels are already what Pillow's convert() would give.
_PNG_NATIVE_COLOUR = {"L": 0, "RGB": 2}


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_frame_pixels: int


def _describe(frame: UploadedFrame) -> str:
    return f"frame {frame.index} ({frame.filename})"


def open_frame(frame: UploadedFrame) -> Image.Image:
    """Open lazily (header only) among the supported formats, naming what was wrong on failure."""
    try:
        return Image.open(io.BytesIO(frame.data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (its global limit) fired while reading the header.
        raise ContentTooLargeError(
            f"{_describe(frame)} declares more pixels than any frame may have"
        ) from None
    except UnidentifiedImageError:
        pass
    except Exception as exc:  # a corrupt header can raise assorted errors from a plugin
        raise UndecodableFrameError(
            f"{_describe(frame)} is not a decodable image: {type(exc).__name__}: {exc}"
        ) from None
    # Not one of ours: say whether it is another image format or no image at all.
    try:
        with Image.open(io.BytesIO(frame.data)) as other:
            detected = other.format
    except Exception:
        detected = None
    if detected:
        raise UnsupportedFrameFormatError(
            f"{_describe(frame)} is {detected}; supported formats are "
            f"{', '.join(SUPPORTED_FORMATS)}"
        )
    raise UndecodableFrameError(
        f"{_describe(frame)} is not a decodable image (supported formats: "
        f"{', '.join(SUPPORTED_FORMATS)})"
    )


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """A PNG's width, height, bit depth and colour type from its IHDR chunk, which comes first
    (length, b"IHDR", width, height, depth, colour type, ...); None for anything else."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) as its header declares it, without Pillow; None if not a PNG."""
    header = png_header(data)
    return None if header is None else (header[0], header[1])


def decode_png_fast(data: bytes, spec: InputSpec) -> PixelArray | None:
    """The frame's pixels via libspng, or None when the PNG needs Pillow's conversions."""
    header = png_header(data)
    return None if header is None else decode_png_as(data, header, spec)


def decode_png_as(
    data: bytes, header: tuple[int, int, int, int], spec: InputSpec
) -> PixelArray | None:
    """``decode_png_fast`` for a PNG whose header (``png_header``) has been read already."""
    width, height, depth, colour = header
    if (width, height) != (spec.width, spec.height) or depth != 8:
        return None
    if colour != _PNG_NATIVE_COLOUR[spec.color_mode]:
        return None
    try:
        pixels: PixelArray = pyspng.load(data)
    except RuntimeError:  # corrupt: Pillow decodes it again to say what is wrong
        return None
    return pixels


def decode_frame(frame: UploadedFrame, spec: InputSpec, limits: DecodeLimits) -> PixelArray:
    """Decode one frame to ``(height, width)`` or ``(height, width, 3)`` uint8, per ``spec``."""
    fast = decode_png_fast(frame.data, spec)
    if fast is not None:
        return fast
    with open_frame(frame) as image:
        width, height = image.size
        if width * height > limits.max_frame_pixels:
            raise ContentTooLargeError(
                f"{_describe(frame)} is {width}x{height} pixels, above the limit of "
                f"{limits.max_frame_pixels} pixels (limit max_frame_pixels)"
            )
        try:
            image.load()
            return conform_image(image, spec)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise UndecodableFrameError(f"{_describe(frame)} could not be decoded: {exc}") from None


def conform_image(image: Image.Image, spec: InputSpec) -> PixelArray:
    """An opened image as the model sees it: the manifest's colour mode, resized with its
    filter when the size differs, as uint8 pixels. Uploaded frames and the frames of a
    recording both go through here, so a frame gets the same pixels however it arrived."""
    converted = _convert(image, spec.color_mode)
    if converted.size != (spec.width, spec.height):
        converted = converted.resize((spec.width, spec.height), RESIZE_FILTERS[spec.resize_filter])
    pixels: PixelArray = np.asarray(converted, dtype=np.uint8)
    return pixels


def _convert(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if image.mode == "P" and "transparency" in image.info:
        # Pillow warns when a palette image with transparency skips RGBA on its way elsewhere.
        image = image.convert("RGBA")
    return image.convert(mode)


def decode_frames(
    frames: Sequence[UploadedFrame], spec: InputSpec, limits: DecodeLimits
) -> list[PixelArray]:
    """Decode every frame in order; the first bad frame stops the work and is named."""
    return [decode_frame(frame, spec, limits) for frame in frames]
