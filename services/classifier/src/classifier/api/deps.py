"""Per-app state and the dependencies that hand it to handlers (never module globals).

The dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a
worker thread, which cost three thread hand-offs per request for what is an attribute read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from classifier.core.config import Settings
from classifier.core.errors import NotReadyError
from classifier.core.logs import LogShipper
from classifier.core.metrics import Metrics
from classifier.jobs.data_dir import DataDir
from classifier.jobs.runner import JobRunner
from classifier.jobs.store import JobStore
from classifier.model.repository import ModelRepository, ServedModel

if TYPE_CHECKING:
    from classifier.security.auth import AccessControl


@dataclass(slots=True)
class ServiceState:
    """Everything one app instance owns; the lifespan fills in the parts that need start-up."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    logs: LogShipper | None = None
    models: ModelRepository | None = None
    ready: bool = False
    in_flight: int = 0
    queue_wait_average: float = 0.0  # seconds, a moving average over recent inference requests
    jobs: JobStore | None = None
    data: DataDir | None = None
    runner: JobRunner | None = None
    uploads_in_flight: int = 0  # recording uploads being received by this process
    access_control: AccessControl | None = None  # API keys and their limits; None: keys off


async def get_service(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    return service


ServiceDep = Annotated[ServiceState, Depends(get_service)]


async def get_models(service: ServiceDep) -> ModelRepository:
    if service.models is None or not service.ready:
        raise NotReadyError("the model is not loaded yet")
    return service.models


ModelsDep = Annotated[ModelRepository, Depends(get_models)]


async def get_default_model(models: ModelsDep) -> ServedModel:
    return next(iter(models))


DefaultModelDep = Annotated[ServedModel, Depends(get_default_model)]


@dataclass(frozen=True, slots=True)
class Jobs:
    """The job store and the data folder, once the lifespan has opened them."""

    store: JobStore
    data: DataDir
    runner: JobRunner | None


async def get_jobs(service: ServiceDep) -> Jobs:
    if service.jobs is None or service.data is None:
        raise NotReadyError("the job store is not open yet")
    return Jobs(store=service.jobs, data=service.data, runner=service.runner)


JobsDep = Annotated[Jobs, Depends(get_jobs)]
