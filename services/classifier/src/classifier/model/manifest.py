"""The model manifest: the JSON file beside the .onnx that says how to feed and read the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifier.core.errors import ManifestError

MANIFEST_FILENAME = "manifest.json"

ResizeFilter = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]


class InputSpec(BaseModel):
    """How frames become the model's input tensor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Name of the graph input.")
    layout: Literal["NTHWC", "NTCHW"] = Field(description="Axis order of the input tensor.")
    frames: int = Field(ge=1, le=1024, description="Frames per sequence (T).")
    height: int = Field(ge=1, le=4096)
    width: int = Field(ge=1, le=4096)
    channels: Literal[1, 3]
    dtype: Literal["float32"] = "float32"
    scaling: Literal["unit", "raw"] = Field(
        description="'unit': pixel/255 in [0, 1]; 'raw': pixel values 0..255 as floats."
    )
    color_mode: Literal["L", "RGB"] = Field(description="Pillow mode each frame is converted to.")
    resize_filter: ResizeFilter = Field(
        description="Pillow filter used when a frame's size differs."
    )

    @model_validator(mode="after")
    def _channels_match_mode(self) -> InputSpec:
        expected = 1 if self.color_mode == "L" else 3
        if self.channels != expected:
            raise ValueError(
                f"color_mode {self.color_mode} has {expected} channel(s), not {self.channels}"
            )
        return self

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The per-sequence shape, without the batch axis."""
        if self.layout == "NTHWC":
            return (self.frames, self.height, self.width, self.channels)
        return (self.frames, self.channels, self.height, self.width)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """One frame's shape: the per-sequence shape without the T axis."""
        return self.shape[1:]


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Name of the graph output holding one score per label.")
    kind: Literal["logits", "probabilities"]


class ModelPart(BaseModel):
    """One graph of the split model: a file beside the manifest, its sha256 and its tensors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = Field(min_length=1, description="Name of the graph's one input.")
    output: str = Field(min_length=1, description="Name of the graph output that is used.")


class FrameEncoderPart(ModelPart):
    """Frames ``[N, *input.frame_shape]``, scaled as for the whole graph -> ``[N, E]``."""

    embedding_size: int = Field(ge=1, le=65536, description="E, one frame's embedding length.")


class SequenceHeadPart(ModelPart):
    """Embeddings of a whole recording ``[1, L, E]`` (any L) -> per-frame scores
    ``[1, L, labels]``. Each frame's scores depend only on the ``context_frames`` embeddings
    either side of it, so a stream may be labelled in chunks overlapping by that much."""

    kind: Literal["logits", "probabilities"]
    context_frames: int = Field(ge=0, le=1 << 20, description="Receptive-field radius in frames.")


class ModelParts(BaseModel):
    """The whole-clip graph split in two, from the same weights: the frame encoder, and the
    temporal head over a window of embeddings ``[W, input.frames, E]`` -> ``[W, labels]``
    scores of the same ``output.kind``. Lets a recording encode each frame once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_encoder: FrameEncoderPart
    temporal_head: ModelPart
    #: Optional: labels every frame from the encoder's embeddings (instead of averaging windows).
    sequence_head: SequenceHeadPart | None = None


class Manifest(BaseModel):
    """What ``manifest.json`` holds; ``provenance`` and ``metrics`` are free-form, served as-is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: str = Field(min_length=1, max_length=64)
    description: str = ""
    file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: tuple[str, ...] = Field(min_length=2)
    input: InputSpec
    output: OutputSpec
    parts: ModelParts | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _labels_unique(self) -> Manifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        return self


def load_manifest(model_dir: Path) -> Manifest:
    """Read and validate ``manifest.json`` in ``model_dir``."""
    path = model_dir / MANIFEST_FILENAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"no model manifest at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc}") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ManifestError(f"invalid model manifest {path}: {where}: {first['msg']}") from None
