"""The benchmark's requests: natural-looking generated clips, encoded and wrapped as uploads."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from behaviour_clips import LABELS, clip_to_jpeg_bytes, clip_to_png_bytes, generate_clip

SEED_BASE = 9_000_000  # far from training and test seeds


@dataclass(frozen=True)
class Upload:
    """One request body with its headers, and the label of the clip it carries."""

    body: bytes
    headers: dict[str, str]
    label: str


def clips(count: int = len(LABELS)) -> list[tuple[str, np.ndarray]]:
    return [
        (LABELS[i % len(LABELS)], generate_clip(LABELS[i % len(LABELS)], SEED_BASE + i))
        for i in range(count)
    ]


def multipart(field: str, frames: list[bytes], ext: str, mime: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for i, data in enumerate(frames):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="frame_{i:02d}.{ext}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def frame_uploads(field: str, fmt: str) -> list[Upload]:
    out = []
    for label, clip in clips():
        if fmt == "png":
            frames, ext, mime = clip_to_png_bytes(clip), "png", "image/png"
        else:
            frames, ext, mime = clip_to_jpeg_bytes(clip, quality=90), "jpg", "image/jpeg"
        body, content_type = multipart(field, frames, ext, mime)
        out.append(Upload(body, {"Content-Type": content_type}, label))
    return out


def oip_binary_uploads(input_name: str) -> list[Upload]:
    """OIP binary-tensor requests: a JSON header, then the UINT8 frames as raw bytes."""
    out = []
    for label, clip in clips():
        raw = np.ascontiguousarray(clip[np.newaxis, ..., np.newaxis], dtype=np.uint8).tobytes()
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": input_name,
                        "shape": [1, *clip.shape, 1],
                        "datatype": "UINT8",
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "outputs": [{"name": "probabilities"}],
            }
        ).encode()
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        }
        out.append(Upload(header + raw, headers, label))
    return out


def write_wrk_bodies(uploads: list[Upload], folder: Path) -> Path:
    """Write bodies and the index that bench/requests.lua reads to rotate through them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, upload in enumerate(uploads):
        path = folder / f"body_{i}.bin"
        path.write_bytes(upload.body)
        lines.append(f"{path}\t" + "|".join(f"{k}: {v}" for k, v in upload.headers.items()))
    index = folder / "bodies.txt"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index
