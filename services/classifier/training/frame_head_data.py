"""Training and validation data for the per-frame sequence head: generated recordings turned into
frame-encoder embeddings by the service's own model code, computed once and cached.

Training recordings are generated at 64x64 (the model's input size, so the service's conversion
leaves the pixels as they are) from seeds 20000 upwards, plus a few rendered at 240x240, encoded
H.264 (crf 23) and decoded as the service decodes a video. Validation uses the tuning recordings
(seeds 8000-8002) as `make evaluate` renders them. Seeds below 100 (tests), 8000-8002 (tuning)
and 9000-9009 (`make evaluate`'s held-out set) are never trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from evaluate import encode_h264
from PIL import Image

from behaviour_clips import generate_recording
from classifier.model.runtime import SequenceModel

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

ENCODE_BATCH = 1024
RESIZE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True, slots=True)
class RecordingSpec:
    """One recording to embed: its seed and length, and how its frames reach the model."""

    seed: int
    frames: int
    size: int = 64
    #: "raw": the generator's pixels; "h264": encoded at crf 23 and decoded by PyAV.
    route: str = "raw"

    @property
    def key(self) -> str:
        return f"seed{self.seed}-{self.frames}f-{self.size}px-{self.route}"


def training_specs(recordings: int, frames: int, h264: int) -> list[RecordingSpec]:
    """`recordings` raw 64x64 recordings from seed 20000 and `h264` H.264 240x240 ones from
    seed 30000."""
    specs = [RecordingSpec(20000 + k, frames) for k in range(recordings)]
    specs += [RecordingSpec(30000 + k, frames // 2, 240, "h264") for k in range(h264)]
    return specs


def video_embeddings(path: Path, model: SequenceModel) -> FloatArray:
    """Every frame of a video decoded as the service decodes one (RGB, then the manifest's colour
    mode and size through Pillow), embedded in batches."""
    spec = model.manifest.input
    chunks: list[FloatArray] = []
    batch: list[npt.NDArray[np.uint8]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            image = Image.fromarray(frame.to_ndarray(format="rgb24")).convert(spec.color_mode)
            if image.size != (spec.width, spec.height):
                image = image.resize((spec.width, spec.height), RESIZE[spec.resize_filter])
            batch.append(np.asarray(image, dtype=np.uint8))
            if len(batch) == ENCODE_BATCH:
                chunks.append(_embed(np.stack(batch), model))
                batch = []
    if batch:
        chunks.append(_embed(np.stack(batch), model))
    return np.concatenate(chunks)


def _embed(pixels: npt.NDArray[np.uint8], model: SequenceModel) -> FloatArray:
    frames = pixels.astype(np.float32)[..., None] / np.float32(255.0)
    return model.encode_frames(frames)


def array_embeddings(pixels: npt.NDArray[np.uint8], model: SequenceModel) -> FloatArray:
    """Raw generated frames already at the model's size, embedded in batches."""
    spec = model.manifest.input
    if pixels.shape[1:] != (spec.height, spec.width):
        raise ValueError(f"raw frames are {pixels.shape[1:]}, the model takes {spec.height}")
    return np.concatenate(
        [_embed(pixels[k : k + ENCODE_BATCH], model) for k in range(0, len(pixels), ENCODE_BATCH)]
    )


def cached_embeddings(
    spec: RecordingSpec, model: SequenceModel, cache: Path, labels: tuple[str, ...]
) -> tuple[FloatArray, IntArray]:
    """(embeddings [N, E], label indices [N]) of one recording, computed once."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{spec.key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return stored["embeddings"], stored["labels"]
    started = time.perf_counter()
    evaluation_video = (
        cache.parent
        / "evaluation"
        / (f"recording-{spec.seed}-{spec.frames}f-{spec.size}px-crf23.mp4")
    )
    if spec.route == "h264" and evaluation_video.is_file():
        # `make evaluate`'s own cached video of this seed, with its labels beside it.
        names = json.loads(evaluation_video.with_suffix(".labels.json").read_text())
        embeddings = video_embeddings(evaluation_video, model)
    else:
        pixels, names = generate_recording(spec.seed, spec.frames, size=spec.size)
        if spec.route == "h264":
            video = cache / f"{spec.key}.mp4"
            encode_h264(pixels, video)
            del pixels
            embeddings = video_embeddings(video, model)
            video.unlink()
        else:
            embeddings = array_embeddings(pixels, model)
    index = {label: k for k, label in enumerate(labels)}
    truth = np.array([index[name] for name in names], dtype=np.int64)
    if len(truth) != len(embeddings):
        raise RuntimeError(f"{spec.key}: {len(embeddings)} embeddings for {len(truth)} labels")
    np.savez(path, embeddings=embeddings, labels=truth)
    print(f"  {spec.key}: embedded in {time.perf_counter() - started:.0f} s", flush=True)
    return embeddings, truth
