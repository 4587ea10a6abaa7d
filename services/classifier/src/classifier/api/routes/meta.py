"""Service-level routes: the landing document and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from classifier import __version__
from classifier.api.deps import ServiceDep

router = APIRouter(tags=["service"])


@router.get("/", summary="What this service is and where to go next")
async def index(service: ServiceDep) -> dict[str, object]:
    models = [entry.model.name for entry in service.models] if service.models else []
    return {
        "service": "image-sequence-classifier",
        "version": __version__,
        "ready": service.ready,
        "models": models,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": {"live": "/health/live", "ready": "/health/ready"},
        "metrics": "/metrics",
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(service: ServiceDep) -> Response:
    if service.settings.metrics_access == "off":
        raise HTTPException(404, "metrics are not served here (CLASSIFIER_METRICS_ACCESS=off)")
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
