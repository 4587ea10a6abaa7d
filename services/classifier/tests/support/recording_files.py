"""Recordings for the jobs tests: videos encoded with PyAV (H.264 and others), image sequences,
and broken files made from good ones, plus the client calls that submit and follow them."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.support.frames import encode, gray_frame

Pixels = npt.NDArray[np.uint8]
MultipartFiles = list[tuple[str, tuple[str, bytes, str]]]
FINISHED = ("succeeded", "failed", "cancelled")


def video_bytes(
    frames: Pixels,
    *,
    fps: int = 30,
    codec: str = "libx264",
    container: str = "mp4",
    options: dict[str, str] | None = None,
) -> bytes:
    """Grayscale frames ``[N, H, W]`` encoded as a real video file (H.264 MP4 by default)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(
            options if options is not None else {"crf": "18", "preset": "ultrafast"}
        )
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(np.repeat(pixels[..., None], 3, axis=2), "rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def faststart_mp4(frames: Pixels, *, fps: int = 30) -> bytes:
    """H.264 MP4 with its index first ("fast start"), as streaming tools write it: cut short, it
    still opens, and decoding stops before the frames the index lists."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "faststart.mp4"
        with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as output:
            stream = output.add_stream("libx264", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "ultrafast"}
            for pixels in frames:
                frame = av.VideoFrame.from_ndarray(np.repeat(pixels[..., None], 3, axis=2), "rgb24")
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode():
                output.mux(packet)
        return path.read_bytes()


def noise_frames(count: int, size: int = 64) -> Pixels:
    """Random frames: every frame costs the encoder real bytes, so a cut lands mid-recording."""
    return np.random.default_rng(0).integers(0, 256, (count, size, size), dtype=np.uint8)


def uniform_frames(values: Sequence[int], size: int = 64) -> Pixels:
    """One uniform grayscale frame per value: the brightness test model labels them exactly."""
    return np.stack([np.full((size, size), value, dtype=np.uint8) for value in values])


def unknown_codec_avi() -> bytes:
    """A well-formed AVI whose video stream's fourcc names no codec FFmpeg can decode."""
    data = video_bytes(uniform_frames([128] * 30), codec="mpeg4", container="avi", options={})
    assert data.count(b"FMP4") == 2  # the stream header's and the bitmap header's fourcc
    return data.replace(b"FMP4", b"QQZ9")


def png_sequence(values: Sequence[int], size: tuple[int, int] = (64, 64)) -> list[bytes]:
    return [encode(gray_frame(value, size)) for value in values]


def frame_parts(frames: Sequence[bytes], ext: str = "png") -> MultipartFiles:
    content_type = {"png": "image/png", "ppm": "image/x-portable-pixmap"}.get(ext, "image/png")
    return [("frames", (f"img_{i:05d}.{ext}", data, content_type)) for i, data in enumerate(frames)]


def ppm_frame() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 100).save(buffer, format="PPM")
    return buffer.getvalue()


def video_part(data: bytes, filename: str = "cage1.mp4") -> MultipartFiles:
    return [("video", (filename, data, "video/mp4"))]


async def wait_for_status(
    client: httpx.AsyncClient,
    job_id: str,
    statuses: Sequence[str] = FINISHED,
    *,
    timeout: float = 90.0,  # noqa: ASYNC109 - one deadline for the whole wait reads best
    until: Any = None,
) -> dict[str, Any]:
    """Poll the job until its status is one of ``statuses`` (and ``until(document)`` holds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        if document["status"] in statuses and (until is None or until(document)):
            return document
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} still {document['status']}: {document}")
        if document["status"] in FINISHED:
            raise AssertionError(f"job {job_id} ended {document['status']}: {document}")
        await asyncio.sleep(0.1)


def leftover_uploads(data_dir: Path) -> list[str]:
    """Upload folders left in the data folder (none once a refused upload is cleaned up)."""
    uploads = data_dir / "uploads"
    return sorted(path.name for path in uploads.iterdir()) if uploads.is_dir() else []
