"""The native ``/v1`` API: model metadata and classification of an uploaded sequence."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from classifier.api.access import record_classification
from classifier.api.deps import ModelsDep, ServiceDep
from classifier.api.frames import multipart_openapi, prepare_sequence
from classifier.api.schemas import (
    ClassifyResponse,
    InputOut,
    ModelInfo,
    ModelList,
    ModelRef,
    OutputOut,
    Problem,
    RankedLabelOut,
    Timings,
)
from classifier.core.errors import FrameCountError
from classifier.model.runtime import SequenceModel
from classifier.pipeline.answer import classify

router = APIRouter(prefix="/v1/models", tags=["models"])

ModelName = Annotated[
    str, Path(description="Model name from its manifest.", examples=["rodent-behaviour"])
]
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


def model_info(model: SequenceModel, ready: bool) -> ModelInfo:
    manifest = model.manifest
    spec = manifest.input
    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        description=manifest.description,
        sha256=manifest.sha256,
        labels=list(manifest.labels),
        input=InputOut(**spec.model_dump(), shape=[-1, *spec.shape]),
        output=OutputOut(**manifest.output.model_dump()),
        provenance=manifest.provenance,
        metrics=manifest.metrics,
        ready=ready,
    )


@router.get("", summary="List served models", response_model=ModelList)
async def list_models(models: ModelsDep, service: ServiceDep) -> ModelList:
    return ModelList(models=[model_info(entry.model, service.ready) for entry in models])


@router.get(
    "/{name}",
    summary="One model's manifest as served",
    response_model=ModelInfo,
    responses={404: PROBLEM},
)
async def get_model(name: ModelName, models: ModelsDep, service: ServiceDep) -> ModelInfo:
    return model_info(models.get(name).model, service.ready)


def _count_check(received: int, expected: int) -> None:
    if received != expected:
        raise FrameCountError(f"expected exactly {expected} frames, received {received}")


def _clamp_top_k(top_k: int | None, labels: int) -> int:
    return labels if top_k is None else min(top_k, labels)


@router.post(
    "/{name}/classify",
    summary="Classify one sequence of frames",
    description=(
        "Multipart field `frames` (or `images`, as in the original API) holding exactly as many "
        "image files as the model's sequence length, in order. PNG, JPEG, BMP, TIFF, WebP and "
        "GIF (first frame) of any size and mode are accepted; each is converted and resized as "
        "the model's manifest says."
    ),
    response_model=ClassifyResponse,
    responses={
        400: {**PROBLEM, "description": "Malformed multipart body."},
        404: {**PROBLEM, "description": "No model of that name."},
        408: {**PROBLEM, "description": "The body did not arrive in time."},
        413: {
            **PROBLEM,
            "description": "A frame, the body, a frame's pixels or the part count is over a limit.",
        },
        415: {
            **PROBLEM,
            "description": "Not multipart/form-data, or a frame in an unsupported format.",
        },
        422: {
            **PROBLEM,
            "description": "Wrong number of frames, an undecodable frame, or a bad top_k.",
        },
        503: {**PROBLEM, "description": "Not ready, or at capacity (see Retry-After)."},
    },
    openapi_extra=multipart_openapi("frames", "The frames, in order."),
)
async def classify_sequence(
    request: Request,
    name: ModelName,
    models: ModelsDep,
    service: ServiceDep,
    top_k: Annotated[
        int | None,
        Query(ge=1, le=1000, description="How many ranked labels to return (default: all)."),
    ] = None,
) -> ClassifyResponse:
    started = time.perf_counter()
    served = models.get(name)
    model = served.model
    sequence = await prepare_sequence(
        request, service, model.manifest.input, ("frames", "images"), _count_check
    )
    inference = await served.engine.infer(sequence.tensor)
    labels = model.manifest.labels
    result = classify(inference.probabilities[0], labels, _clamp_top_k(top_k, len(labels)))
    record_classification(request, model, sequence.frames, result)
    return ClassifyResponse(
        request_id=request.state.request_id,
        model=ModelRef(name=model.name, version=model.version),
        label=result.label,
        class_index=result.class_index,
        confidence=result.confidence,
        probabilities=result.probabilities,
        top_k=[
            RankedLabelOut(label=r.label, class_index=r.class_index, probability=r.probability)
            for r in result.top_k
        ],
        frames=sequence.frames,
        timings=Timings(
            parse_ms=round(sequence.parse_seconds * 1000, 3),
            decode_ms=round(sequence.decode_seconds * 1000, 3),
            inference_ms=round(inference.seconds * 1000, 3),
            total_ms=round((time.perf_counter() - started) * 1000, 3),
        ),
    )
