"""The Open Inference Protocol (KServe v2) REST API, with the binary tensor data extension, so
Triton, KServe and MLServer clients work against this service unchanged.

Each model route is one handler registered twice: at ``/models/{name}...`` and at
``/models/{name}/versions/{version}...``. What /docs shows of them is in ``api/oip_schemas.py``;
errors are the protocol's ``{"error": "..."}`` (rendered in ``api/errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response

from classifier import __version__
from classifier.api.access import record_classification
from classifier.api.body import read_body
from classifier.api.deps import ModelsDep, ServiceDep
from classifier.api.frames import clip_body_limits
from classifier.api.oip_schemas import (
    INFER_DESCRIPTION,
    INFER_OPENAPI,
    INFER_RESPONSES,
    METADATA_RESPONSES,
    ModelMetadata,
    ModelReady,
    ServerMetadata,
)
from classifier.core.arrays import FloatArray
from classifier.model.repository import ServedModel
from classifier.pipeline.answer import classify
from classifier.pipeline.oip_codec import (
    EXTENSIONS,
    HEADER_LENGTH,
    LOGITS,
    PROBABILITIES,
    SERVER_NAME,
    InferenceRequest,
    decode_inference_request,
    decompress_body,
    encode_inference_response,
    model_metadata,
    output_names,
    split_body,
)

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

# Decoding JSON tensors costs about 0.1 ms per KB, binary ones microseconds: small requests are
# decoded on the event loop, large or compressed ones in a worker thread.
INLINE_JSON_BYTES = 64 * 1024
INLINE_BINARY_BYTES = 1024 * 1024

ModelName = Annotated[
    str, Path(description="Model name from its metadata.", examples=["rodent-behaviour"])
]
ModelVersion = Annotated[str, Path(description="Model version.", examples=["1.0.0"])]
HeaderLength = Annotated[
    str | None,
    Header(
        alias=HEADER_LENGTH,
        description="Length of the JSON object when binary tensor data follows it.",
    ),
]


async def _served_model(request: Request, name: ModelName, models: ModelsDep) -> ServedModel:
    """The model a route names: by name, and on the ``/versions/{version}`` routes by version."""
    return models.get(name, request.path_params.get("version"))


async def _versioned(name: ModelName, version: ModelVersion) -> None:
    """The path parameters of a versioned route, declared here so they are validated and shown in
    /docs (in this order); ``_served_model`` reads them."""


ServedDep = Annotated[ServedModel, Depends(_served_model)]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def _model_route(
    method: str,
    path: str,
    *,
    summary: str,
    versioned_summary: str,
    versioned_name: str,
    **options: Any,
) -> Callable[[Endpoint], Endpoint]:
    """Register an endpoint at ``/models/{name}<path>``, and at
    ``/models/{name}/versions/{version}<path>`` under its own summary and name (the name makes the
    operation's id in the OpenAPI document)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            f"/models/{{name}}{path}", endpoint, methods=[method], summary=summary, **options
        )
        router.add_api_route(
            f"/models/{{name}}/versions/{{version}}{path}",
            endpoint,
            methods=[method],
            summary=versioned_summary,
            name=versioned_name,
            dependencies=[Depends(_versioned)],
            **options,
        )
        return endpoint

    return register


# --- server --------------------------------------------------------------------------------------


@router.get("", summary="Server metadata", response_model=ServerMetadata)
@router.get("/", include_in_schema=False)
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))


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


@_model_route(
    "GET",
    "",
    summary="Model metadata",
    versioned_summary="Model metadata, of one version",
    versioned_name="get_model_version_metadata",
    response_model=ModelMetadata,
    responses=METADATA_RESPONSES,
)
async def get_model_metadata(served: ServedDep) -> dict[str, Any]:
    return model_metadata(served.model.manifest)


@_model_route(
    "GET",
    "/ready",
    summary="Model ready",
    versioned_summary="Model ready, of one version",
    versioned_name="model_version_ready",
    response_model=ModelReady,
    responses=METADATA_RESPONSES,
)
async def model_ready(served: ServedDep) -> ModelReady:
    return ModelReady(name=served.model.name, ready=True)


# --- inference -----------------------------------------------------------------------------------


async def _run_model(
    served: ServedModel, batch: FloatArray, want_logits: bool
) -> dict[str, FloatArray]:
    inference = await served.engine.infer(batch)
    if not want_logits:
        return {PROBABILITIES: inference.probabilities}
    return {PROBABILITIES: inference.probabilities, LOGITS: inference.scores}


@_model_route(
    "POST",
    "/infer",
    summary="Inference",
    versioned_summary="Inference, on one version",
    versioned_name="infer_version",
    description=INFER_DESCRIPTION,
    response_class=Response,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_OPENAPI,
)
async def infer(
    request: Request, served: ServedDep, service: ServiceDep, header_length: HeaderLength = None
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
