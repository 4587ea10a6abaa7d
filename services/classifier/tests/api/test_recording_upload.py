"""receive_recording on a real multipart body: an image sequence lands in one pack file, its
frames' spans and names kept in order and their bytes hashed as the command line hashes files."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.api.recording_upload import (
    PACK_FILE,
    ReceivedRecording,
    RecordingUploadLimits,
    frame_spans,
    receive_recording,
)
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.core.errors import InvalidRecordingRequestError
from classifier.model.manifest import load_manifest
from classifier.recordings.analysis import sequence_sha256
from classifier.recordings.source import ImageSequenceSource
from tests.support.frames import encode, gray_frame

BOUNDARY = "frames-boundary"
SPEC = load_manifest(DEFAULT_MODEL_DIR).input
LIMITS = RecordingUploadLimits(
    max_bytes=10**8, max_frames=1000, max_frame_bytes=10**6, min_free_bytes=0
)


def body(parts: Sequence[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])  # parts cut anywhere across chunks
async def test_an_image_sequence_is_stored_as_one_pack_file_with_each_frames_span(
    tmp_path: Path, chunk: int
) -> None:
    frames = [encode(gray_frame(level), "PNG") for level in (0, 60, 120, 180, 240)]
    names = [f"cam1/frame_{n:03d}.png" for n in range(5)]
    parts = [("fps", None, b"30")] + [
        ("frames", name, data) for name, data in zip(names, frames, strict=True)
    ]
    received = await receive_recording(
        chunks(body(parts), chunk), BOUNDARY.encode(), tmp_path, LIMITS
    )

    assert received.fields == {"fps": "30"}
    check_stored(tmp_path, received, frames)


def check_stored(folder: Path, received: ReceivedRecording, frames: list[bytes]) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [PACK_FILE]  # one file, not five
    pack = (folder / PACK_FILE).read_bytes()
    assert pack == b"".join(frames)
    assert [f.filename for f in received.frames] == [f"frame_{n:03d}.png" for n in range(5)]
    spans = frame_spans(received.frames)
    assert spans is not None
    assert [pack[offset : offset + size] for offset, size in spans] == frames
    # The input hash is the one the command line computes from the same files.
    assert received.sha256 == sequence_sha256(hashlib.sha256(f).hexdigest() for f in frames)
    # And the analysis reads each frame back from its span.
    source = ImageSequenceSource(
        [f.path for f in received.frames], [f.filename for f in received.frames], 30.0,
        spans=spans,
    )  # fmt: skip
    decoded = [frame.pixels for frame in source.frames(SPEC)]
    expected = [np.asarray(Image.open(io.BytesIO(data))) for data in frames]
    assert len(decoded) == 5
    assert all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))


@pytest.mark.parametrize("order", [("video", "frames"), ("frames", "video")])
async def test_a_video_and_frames_in_one_upload_are_refused_at_the_second_kind(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    png = encode(gray_frame(9), "PNG")
    parts = [(name, f"{name}.bin", png) for name in order] + [("frames", "late.png", png * 50)]
    with pytest.raises(InvalidRecordingRequestError) as refused:
        await receive_recording(chunks(body(parts), 1 << 20), BOUNDARY.encode(), tmp_path, LIMITS)
    assert refused.value.detail == "give either one 'video' part or 'frames' parts, not both"
