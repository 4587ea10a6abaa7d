"""``POST /predict``: the original Flask app's contract, kept to the letter."""

from __future__ import annotations

from fastapi import APIRouter, Request

from classifier.api.access import record_classification
from classifier.api.deps import DefaultModelDep, ServiceDep
from classifier.api.frames import multipart_openapi, prepare_sequence
from classifier.api.schemas import PredictResponse, SeedError
from classifier.core.errors import BadUploadError, NotMultipartError, SeedFrameCountError
from classifier.pipeline.answer import classify

router = APIRouter(tags=["seed-compatible"])


def _seed_check(received: int, expected: int) -> None:
    if received != expected:
        raise SeedFrameCountError(f"Please upload exactly {expected} images.")


@router.post(
    "/predict",
    summary="Classify one sequence (the original API)",
    description=(
        "Multipart field `images` holding exactly as many frames as the model's sequence length "
        "(24 for the bundled model), in order. Answers the index of the most probable class, as "
        "the original service did, plus its label and every label's probability."
    ),
    response_model=PredictResponse,
    responses={
        400: {
            "model": SeedError,
            "description": (
                "Not exactly that many `images`: none at all when the body is missing, not "
                "multipart or malformed, as for the original service."
            ),
        },
        413: {"model": SeedError, "description": "A frame or the body is over a size limit."},
        415: {"model": SeedError, "description": "A frame in an unsupported image format."},
        422: {"model": SeedError, "description": "A frame is not a decodable image."},
    },
    openapi_extra=multipart_openapi("images", "The frames, in order."),
)
async def predict(
    request: Request, service: ServiceDep, served: DefaultModelDep
) -> PredictResponse:
    model = served.model
    spec = model.manifest.input
    try:
        sequence = await prepare_sequence(request, service, spec, ("images",), _seed_check)
    except (NotMultipartError, BadUploadError):
        # The original read request.files.getlist("images") through Werkzeug's silent form
        # parser: a body that is missing, not multipart or malformed simply held no images.
        _seed_check(0, spec.frames)
        raise
    inference = await served.engine.infer(sequence.tensor)
    result = classify(inference.probabilities[0], model.manifest.labels, top_k=1)
    record_classification(request, model, sequence.frames, result)
    return PredictResponse(
        predicted_class=result.class_index,
        label=result.label,
        probabilities=result.probabilities,
    )
