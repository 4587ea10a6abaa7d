"""Measuring a served model on held-out synthetic clips, preprocessed by the service's own stages.

Each clip is encoded as a client would send it, then decoded and shaped by ``classifier.pipeline``
(decode, then tensor) with the manifest's ``InputSpec``, so a change to how the service prepares
frames changes what evaluation, the golden fixture and the accuracy tests measure. Torch-free, so
that the model tests can use it where only the service's runtime is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from behaviour_clips import LABELS, clip_to_jpeg_bytes, clip_to_png_bytes, generate_clip, to_rgb
from classifier.model.manifest import InputSpec
from classifier.model.runtime import SequenceModel
from classifier.pipeline.decode import DecodeLimits, decode_frames
from classifier.pipeline.tensor import build_tensor
from classifier.pipeline.upload import UploadedFrame

# Seed ranges never overlap: held-out clips below VALIDATION_SEED_START, the validation clips
# watched during training from there, training clips from TRAIN_SEED_START up.
VALIDATION_SEED_START = 500_000
TRAIN_SEED_START = 1_000_000

# Held-out frames are at most 128x128; the service's pixel limit guards against bombs, which a
# generated clip never is, so any generous bound does.
DECODE_LIMITS = DecodeLimits(max_frame_pixels=4096 * 4096)

VARIANTS = ("png", "jpeg_q75", "rgb128")
"""How a held-out clip reaches the service: lossless 64x64 PNG, JPEG at quality 75, or 128x128
RGB PNG frames that the service converts to grayscale and resizes."""

Tensor = npt.NDArray[np.float32]


def service_tensor(files: Sequence[bytes], spec: InputSpec) -> Tensor:
    """A clip's image files as the (T, H, W, C) float32 sequence the service would infer on:
    ``classifier.pipeline.decode`` then ``classifier.pipeline.tensor``, as for an upload."""
    frames = [
        UploadedFrame(index=index, filename=f"frame_{index:02d}", data=data)
        for index, data in enumerate(files)
    ]
    batch = build_tensor(decode_frames(frames, spec, DECODE_LIMITS), spec)
    sequence: Tensor = batch[0]
    return sequence


def service_probabilities(model: SequenceModel, files: Sequence[bytes]) -> Tensor:
    """The class probabilities the service answers for one clip's image files."""
    batch = service_tensor(files, model.manifest.input)[np.newaxis]
    probabilities: Tensor = model.probabilities_for(batch)[0]
    return probabilities


def variant_files(label: str, seed: int, variant: str) -> list[bytes]:
    """The image files a client would upload for held-out clip (label, seed) in `variant`."""
    # Fast PNG compression: what matters here is the pixels, which PNG keeps exactly.
    if variant == "png":
        return clip_to_png_bytes(generate_clip(label, seed), compress_level=1)
    if variant == "jpeg_q75":
        return clip_to_jpeg_bytes(generate_clip(label, seed), quality=75)
    if variant == "rgb128":
        return clip_to_png_bytes(to_rgb(generate_clip(label, seed, size=128)), compress_level=1)
    raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def heldout_items(per_class: int) -> list[tuple[str, int]]:
    """(label, seed) of the first `per_class` held-out clips of every class.

    Each seed is one cage filmed doing every behaviour, so the classes are compared like for like.
    """
    if not 0 < per_class <= VALIDATION_SEED_START:
        raise ValueError(f"per_class must be within 1..{VALIDATION_SEED_START}, got {per_class}")
    return [(label, seed) for seed in range(per_class) for label in LABELS]


@dataclass(slots=True)
class Evaluation:
    """Accuracy and confusion matrix (rows: true class, columns: predicted) over some clips."""

    labels: tuple[str, ...]
    confusion: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((len(self.labels), len(self.labels)), dtype=np.int64)

    def add(self, true_index: int, predicted_index: int) -> None:
        self.confusion[true_index, predicted_index] += 1

    @property
    def clips(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.clips, 1))

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {
            label: float(self.confusion[i, i] / max(int(totals[i]), 1))
            for i, label in enumerate(self.labels)
        }


Runner = Callable[[Tensor], npt.NDArray[np.float32]]
"""A model: (N, T, H, W, C) float32 in, (N, classes) scores out (``SequenceModel.run``)."""


def evaluate(
    run_model: Runner,
    spec: InputSpec,
    items: Sequence[tuple[str, int]],
    variant: str,
    *,
    batch_size: int = 64,
    prepare: Callable[[Sequence[tuple[str, int]], str, InputSpec], list[Tensor]] | None = None,
) -> Evaluation:
    """Classify every held-out clip in `items` as delivered in `variant`."""
    prepare = prepare or prepare_clips
    evaluation = Evaluation(LABELS)
    for first in range(0, len(items), batch_size):
        chunk = items[first : first + batch_size]
        batch = np.stack(prepare(chunk, variant, spec))
        predicted = np.argmax(run_model(batch), axis=1)
        for (label, _), guess in zip(chunk, predicted, strict=True):
            evaluation.add(LABELS.index(label), int(guess))
    return evaluation


def prepare_clips(items: Sequence[tuple[str, int]], variant: str, spec: InputSpec) -> list[Tensor]:
    """Generate, encode and decode each (label, seed) clip: the service's input tensors."""
    return [service_tensor(variant_files(label, seed, variant), spec) for label, seed in items]
