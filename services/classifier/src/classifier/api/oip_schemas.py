"""What /docs shows of the Open Inference Protocol routes: the response models, the inference
request's schema and example, and each route's description and documented answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from classifier import __version__
from classifier.pipeline.oip_codec import (
    EXTENSIONS,
    HEADER_LENGTH,
    LOGITS,
    MAX_SEQUENCES_PER_REQUEST,
    PROBABILITIES,
    SERVER_NAME,
)

# --- response models ----------------------------------------------------------------------------


class OipError(BaseModel):
    error: str = Field(examples=["no model named 'nope' is served (served: rodent-behaviour)"])


class ServerMetadata(BaseModel):
    name: str = Field(examples=[SERVER_NAME])
    version: str = Field(examples=[__version__])
    extensions: list[str] = Field(examples=[list(EXTENSIONS)])


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="-1 marks the variable batch axis.")


class ModelMetadata(BaseModel):
    name: str = Field(examples=["rodent-behaviour"])
    versions: list[str] = Field(examples=[["1.0.0"]])
    platform: str = Field(examples=["onnx_onnxv1"])
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, str | int] = Field(
        description=(
            "Server-specific: `labels` (a JSON array in a string, in output order), the input's "
            "`layout` and `scaling`, and `max_batch_size`."
        )
    )


class ModelReady(BaseModel):
    name: str
    ready: bool


class ResponseOutput(BaseModel):
    name: str = Field(examples=[PROBABILITIES])
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[1, 8]])
    data: list[float] | None = Field(None, description="Absent for outputs sent as binary.")
    parameters: dict[str, int] | None = Field(
        None, description="`binary_data_size` for outputs sent as binary."
    )


class InferenceResponse(BaseModel):
    model_name: str = Field(examples=["rodent-behaviour"])
    model_version: str = Field(examples=["1.0.0"])
    id: str | None = Field(None, description="The request's `id`, when it had one.")
    outputs: list[ResponseOutput]


ERROR: dict[str, Any] = {"model": OipError}


# --- answers and requests -----------------------------------------------------------------------

METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {**ERROR, "description": "No model of that name (and version)."},
    503: {**ERROR, "description": "Not ready yet."},
}

# The default input (the bundled model's) is 24 frames of 64x64 grayscale: 98 304 values, too many
# for /docs (Swagger UI stalls for minutes on an example that size). The example shows the request's
# structure with shortened data; run as is, it answers the 400 that names the count needed.
_CLIP_STRUCTURE = {
    "id": "clip-1",
    "inputs": [
        {
            "name": "frames",
            "shape": [1, 24, 64, 64, 1],
            "datatype": "UINT8",
            "data": [0, 17, 34, 51, 68, 85, 102, 119],
        }
    ],
    "outputs": [{"name": PROBABILITIES}],
}
_EXAMPLES = {
    "clip-structure": {
        "summary": "One clip as UINT8 pixels (data shortened)",
        "description": (
            "A real request carries every pixel: 24 x 64 x 64 values for the default input "
            "(see the model metadata for another model's input). docs/api.md builds one from "
            "frames with curl or Triton's Python client."
        ),
        "value": _CLIP_STRUCTURE,
    }
}
_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string", "description": "Echoed in the response."},
        "parameters": {
            "type": "object",
            "description": "`binary_data_output: true` sends every output as binary data.",
        },
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string", "example": "frames"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string", "enum": ["FP32", "UINT8"]},
                    "parameters": {"type": "object"},
                    "data": {"type": "array", "items": {}},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "enum": [PROBABILITIES, LOGITS]},
                    "parameters": {"type": "object"},
                },
            },
        },
    },
}


INFER_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _REQUEST_SCHEMA, "examples": _EXAMPLES},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": (
                    "The JSON object, then each binary input's raw little-endian bytes; "
                    f"`{HEADER_LENGTH}` gives the JSON object's length."
                ),
            },
        },
    }
}

INFER_DESCRIPTION = f"""
Runs the model on a batch of sequences sent as the model's one input (its name, and the shape
`[N, ...]` with `1 <= N <= {MAX_SEQUENCES_PER_REQUEST}`, are in the model metadata).

* `datatype` **FP32**: values as the model takes them; **UINT8**: pixels 0..255, scaled as the
  model's manifest says (`scaling` in the metadata's parameters), exactly as `/v1` scales frames.
* `data`: flat, or nested exactly as the shape; or, with the binary tensor data extension,
  `parameters.binary_data_size` and the raw little-endian bytes after the JSON object, whose length
  goes in the `{HEADER_LENGTH}` header.
* `outputs` (default: all): `probabilities` `[N, labels]`, and `logits` when the model has them;
  `parameters.binary_data: true` on an output, or `binary_data_output: true` on the request, sends
  it as binary data after the JSON (the response then carries `{HEADER_LENGTH}`).

The body may be gzip- or deflate-encoded (`Content-Encoding`); it is refused with 413 above
`CLASSIFIER_MAX_REQUEST_BYTES`, before or after inflating.
"""
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InferenceResponse,
        "description": "JSON; or, with binary outputs, the JSON object then the outputs' bytes.",
        "content": {"application/octet-stream": {}},
    },
    400: {**ERROR, "description": "Malformed, mis-shaped or mis-typed inputs or outputs."},
    404: {**ERROR, "description": "No model of that name (and version)."},
    408: {**ERROR, "description": "The body did not arrive in time."},
    413: {**ERROR, "description": "The body is over CLASSIFIER_MAX_REQUEST_BYTES."},
    415: {**ERROR, "description": "A Content-Encoding other than gzip or deflate."},
    503: {**ERROR, "description": "Not ready, or at capacity (see Retry-After)."},
}
