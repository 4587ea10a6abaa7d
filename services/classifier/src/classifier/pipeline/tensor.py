"""Stage 3, build tensor: decoded frames to one float32 sequence shaped as the manifest says."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from classifier.core.arrays import FloatArray
from classifier.model.manifest import InputSpec

#: One sequence (or a batch of them), shaped ``[N, *spec.shape]``, as the model takes it.
SequenceTensor = FloatArray


def build_tensor(pixels: Sequence[npt.NDArray[np.uint8]], spec: InputSpec) -> SequenceTensor:
    """Stack ``spec.frames`` decoded frames into a ``[1, *spec.shape]`` float32 tensor."""
    stacked = np.stack(pixels)  # (T, H, W) or (T, H, W, C)
    if stacked.ndim == 3:
        stacked = stacked[..., np.newaxis]
    if spec.layout == "NTCHW":
        stacked = stacked.transpose(0, 3, 1, 2)
    tensor = stacked.astype(np.float32)
    if spec.scaling == "unit":
        tensor /= np.float32(255.0)
    return tensor[np.newaxis, ...]
