"""Service-level routes: the landing document (or, for browsers, the web page) and Prometheus
metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from classifier import __version__
from classifier.api.deps import ServiceDep
from classifier.web.negotiation import prefers_html
from classifier.web.routes import page_response

router = APIRouter(tags=["service"])


@router.get(
    "/",
    summary="What this service is and where to go next",
    description=(
        "JSON for API clients (`Accept: */*` or `application/json`); the web page for browsers "
        "(`Accept` naming `text/html`)."
    ),
    response_class=JSONResponse,
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def index(request: Request, service: ServiceDep) -> Response:
    if prefers_html(request.headers.get("accept")):
        return page_response()
    models = [entry.model.name for entry in service.models] if service.models else []
    document = {
        "service": "image-sequence-classifier",
        "version": __version__,
        "ready": service.ready,
        "models": models,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": {"live": "/health/live", "ready": "/health/ready"},
        "metrics": "/metrics",
    }
    return JSONResponse(document, headers={"Vary": "Accept"})


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
