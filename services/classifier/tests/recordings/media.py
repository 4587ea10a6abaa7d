"""Test recordings made on the spot: generated frames encoded by PyAV, image folders, damage."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

UInt8 = npt.NDArray[np.uint8]


def encode_video(
    path: Path,
    frames: UInt8,
    *,
    fps: int = 30,
    codec: str = "libx264",
    times_s: Sequence[float] | None = None,
    faststart: bool = False,
    crf: int = 18,
    x264_params: str | None = None,
) -> Path:
    """Encode grayscale or RGB frames; ``times_s`` gives each frame's own timestamp (VFR);
    ``x264_params`` passes libx264 its own options (``keyint=90:open-gop=1``)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
            if x264_params:
                stream.options = {**stream.options, "x264-params": x264_params}
        if times_s is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index, frame in enumerate(frames):
            fmt = "gray" if frame.ndim == 2 else "rgb24"
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=fmt)
            if times_s is not None:
                video_frame.pts = round(times_s[index] * 1000)
                video_frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, frames: UInt8, *, image_format: str = "PNG") -> list[Path]:
    """One image file per frame, named so that name order is frame order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    suffix = {"PNG": "png", "JPEG": "jpg"}[image_format]
    for index, frame in enumerate(frames):
        path = folder / f"frame_{index:05d}.{suffix}"
        Image.fromarray(frame).save(path, format=image_format)
        paths.append(path)
    return paths


def png_bytes(frame: UInt8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def garble(path: Path, *, at: float = 0.5, length: int = 2000) -> Path:
    """Overwrite ``length`` bytes from ``at`` (a fraction of the file) with a fixed pattern."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + length] = b"\x55" * min(length, len(data) - start)
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, fraction: float, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
