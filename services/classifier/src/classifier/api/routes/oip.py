"""The Open Inference Protocol (KServe v2) REST API, with the binary tensor data extension, so
Triton, KServe and MLServer clients work against this service unchanged.

Errors on these routes are the protocol's ``{"error": "..."}`` (rendered in ``api/errors.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from classifier import __version__
from classifier.api.body import read_body
from classifier.api.deps import ModelsDep, ServiceDep, ServiceState
from classifier.api.frames import clip_body_limits
from classifier.api.middleware import record_classification
from classifier.model.repository import ServedModel
from classifier.model.runtime import FloatArray
from classifier.pipeline.answer import classify
from classifier.pipeline.oip_codec import (
    BINARY_TENSOR_DATA,
    LOGITS,
    MAX_BATCH,
    PROBABILITIES,
    InferenceRequest,
    decode_inference_request,
    decompress_body,
    encode_inference_response,
    model_metadata,
    output_names,
    split_body,
)

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

SERVER_NAME = "image-sequence-classifier"
EXTENSIONS = (BINARY_TENSOR_DATA,)
HEADER_LENGTH = "Inference-Header-Content-Length"
# Decoding JSON tensors costs about 0.1 ms per KB, binary ones microseconds: small requests are
# decoded on the event loop, large or compressed ones in a worker thread.
INLINE_JSON_BYTES = 64 * 1024
INLINE_BINARY_BYTES = 1024 * 1024


# --- response schemas, for /docs -----------------------------------------------------------------


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
ModelName = Annotated[
    str, Path(description="Model name from its metadata.", examples=["rodent-behaviour"])
]
ModelVersion = Annotated[str, Path(description="Model version.", examples=["1.0.0"])]


# --- server --------------------------------------------------------------------------------------


@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))


@router.get("/", include_in_schema=False)
async def server_metadata_slash() -> ServerMetadata:
    return await server_metadata()


@router.get("/health/live", summary="Server live")
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="Server ready: the model is loaded and warmed up",
    responses={200: {"content": {"application/json": {"example": {"ready": True}}}}, 503: {}},
)
async def server_ready(service: ServiceDep) -> JSONResponse:
    if service.ready:
        return JSONResponse({"ready": True})
    return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})


# --- models --------------------------------------------------------------------------------------

METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {**ERROR, "description": "No model of that name (and version)."},
    503: {**ERROR, "description": "Not ready yet."},
}


@router.get(
    "/models/{name}",
    summary="Model metadata",
    response_model=ModelMetadata,
    responses=METADATA_RESPONSES,
)
async def get_model_metadata(name: ModelName, models: ModelsDep) -> dict[str, Any]:
    return model_metadata(models.get(name).model.manifest)


@router.get(
    "/models/{name}/versions/{version}",
    summary="Model metadata, of one version",
    response_model=ModelMetadata,
    responses=METADATA_RESPONSES,
)
async def get_model_version_metadata(
    name: ModelName, version: ModelVersion, models: ModelsDep
) -> dict[str, Any]:
    return model_metadata(models.get(name, version).model.manifest)


@router.get(
    "/models/{name}/ready",
    summary="Model ready",
    response_model=ModelReady,
    responses=METADATA_RESPONSES,
)
async def model_ready(name: ModelName, models: ModelsDep) -> ModelReady:
    return ModelReady(name=models.get(name).model.name, ready=True)


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="Model ready, of one version",
    response_model=ModelReady,
    responses=METADATA_RESPONSES,
)
async def model_version_ready(
    name: ModelName, version: ModelVersion, models: ModelsDep
) -> ModelReady:
    return ModelReady(name=models.get(name, version).model.name, ready=True)


# --- inference -----------------------------------------------------------------------------------

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
`[N, ...]` with `1 <= N <= {MAX_BATCH}`, are in the model metadata).

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
HeaderLength = Annotated[
    str | None,
    Header(
        alias=HEADER_LENGTH,
        description="Length of the JSON object when binary tensor data follows it.",
    ),
]


async def _run_model(
    served: ServedModel, batch: FloatArray, want_logits: bool
) -> dict[str, FloatArray]:
    inference = await served.engine.predict(batch)
    if not want_logits:
        return {PROBABILITIES: inference.probabilities}
    return {PROBABILITIES: inference.probabilities, LOGITS: inference.scores}


async def _infer(
    request: Request,
    service: ServiceState,
    served: ServedModel,
    header_length: str | None,
) -> Response:
    model = served.model
    manifest = model.manifest
    body = await read_body(request, clip_body_limits(service.settings))
    encoding = request.headers.get("content-encoding")
    available = output_names(manifest)

    def inflate_and_decode() -> InferenceRequest:
        inflated = decompress_body(body, encoding, service.settings.max_request_bytes)
        header, binary = split_body(inflated, header_length)
        return decode_inference_request(header, binary, manifest.input, available)

    if encoding is not None:
        decoded = await anyio.to_thread.run_sync(inflate_and_decode)
    else:
        header, binary = split_body(body, header_length)
        if len(header) <= INLINE_JSON_BYTES and len(binary) <= INLINE_BINARY_BYTES:
            decoded = decode_inference_request(header, binary, manifest.input, available)
        else:
            decoded = await anyio.to_thread.run_sync(
                decode_inference_request, header, binary, manifest.input, available
            )

    wanted = {output.name for output in decoded.outputs}
    results = await _run_model(served, decoded.batch, LOGITS in wanted)
    probabilities = results[PROBABILITIES]
    batch = len(decoded.batch)
    # One sequence gets a verdict in the access record, as on /v1; a batch only its size.
    verdict = classify(probabilities[0], manifest.labels, top_k=1) if batch == 1 else None
    record_classification(request, model, batch * manifest.input.frames, verdict)

    encoded = encode_inference_response(
        model_name=model.name,
        model_version=model.version,
        request_id=decoded.id,
        outputs=[(output, results[output.name]) for output in decoded.outputs],
    )
    if encoded.header_length is None:
        return Response(encoded.body, media_type="application/json")
    return Response(
        encoded.body,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(encoded.header_length)},
    )


@router.post(
    "/models/{name}/infer",
    summary="Inference",
    description=INFER_DESCRIPTION,
    response_class=Response,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_OPENAPI,
)
async def infer(
    request: Request,
    name: ModelName,
    models: ModelsDep,
    service: ServiceDep,
    header_length: HeaderLength = None,
) -> Response:
    return await _infer(request, service, models.get(name), header_length)


@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference, on one version",
    description=INFER_DESCRIPTION,
    response_class=Response,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_OPENAPI,
)
async def infer_version(
    request: Request,
    name: ModelName,
    version: ModelVersion,
    models: ModelsDep,
    service: ServiceDep,
    header_length: HeaderLength = None,
) -> Response:
    return await _infer(request, service, models.get(name, version), header_length)
