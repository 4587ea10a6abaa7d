"""Liveness and readiness, as orchestrators and the compose healthcheck probe them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from classifier.api.deps import ServiceDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/ready",
    summary="Readiness: the model is loaded and a warm-up inference passed",
    responses={503: {"description": "Still starting, or shutting down."}},
)
async def ready(service: ServiceDep) -> JSONResponse:
    if service.ready and service.models is not None:
        models = [entry.model.name for entry in service.models]
        return JSONResponse({"status": "ready", "models": models})
    return JSONResponse({"status": "not ready"}, status_code=503, headers={"Retry-After": "1"})
