"""Response bodies of the native API, as pydantic models so /docs shows them with examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    name: str = Field(examples=["rodent-behaviour"])
    version: str = Field(examples=["1.0.0"])


class RankedLabelOut(BaseModel):
    label: str = Field(examples=["walk"])
    class_index: int = Field(examples=[7])
    probability: float = Field(examples=[0.97])


class Timings(BaseModel):
    parse_ms: float = Field(description="Receiving and parsing the multipart body.")
    decode_ms: float = Field(description="Decoding frames and building the tensor.")
    inference_ms: float = Field(description="The model's own time on the batch it ran in.")
    total_ms: float = Field(description="From the handler's start to the answer.")


class ClassifyResponse(BaseModel):
    request_id: str = Field(examples=["3f2b9c0e5d1a4e7f9b8c6d5e4f3a2b1c"])
    model: ModelRef
    label: str = Field(description="The most probable label.", examples=["walk"])
    class_index: int = Field(description="Index of that label in the manifest.", examples=[7])
    confidence: float = Field(description="Its probability.", examples=[0.97])
    probabilities: dict[str, float] = Field(description="Probability of every label.")
    top_k: list[RankedLabelOut] = Field(description="The k most probable labels, best first.")
    frames: int = Field(description="Frames received.", examples=[24])
    timings: Timings


class PredictResponse(BaseModel):
    predicted_class: int = Field(description="Index of the most probable label.", examples=[7])
    label: str = Field(examples=["walk"])
    probabilities: dict[str, float]


class InputOut(BaseModel):
    name: str
    layout: str
    frames: int
    height: int
    width: int
    channels: int
    dtype: str
    scaling: str
    color_mode: str
    resize_filter: str
    shape: list[int] = Field(description="Tensor shape with -1 for the batch axis.")


class OutputOut(BaseModel):
    name: str
    kind: str


class ModelInfo(BaseModel):
    name: str = Field(examples=["rodent-behaviour"])
    version: str = Field(examples=["1.0.0"])
    description: str
    sha256: str
    labels: list[str]
    input: InputOut
    output: OutputOut
    provenance: dict[str, Any]
    metrics: dict[str, Any]
    ready: bool


class ModelList(BaseModel):
    models: list[ModelInfo]


class Problem(BaseModel):
    """RFC 9457 problem details, as every /v1 error is sent."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None


class SeedError(BaseModel):
    error: str = Field(examples=["Please upload exactly 24 images."])
