"""The app factory: ``create_app(settings)`` wires routes, errors and middleware, and its
lifespan loads and warms up the model and starts and stops the log shipper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from classifier import __version__
from classifier.api.deps import ServiceState
from classifier.api.errors import install_error_handlers
from classifier.api.middleware import RequestContextMiddleware
from classifier.api.routes import health, jobs, meta, models, oip, predict, recordings
from classifier.core.config import Settings
from classifier.core.errors import DataDirError, JobStoreUnavailableError, ModelLoadError
from classifier.core.logs import LogShipper
from classifier.jobs.data_dir import prepare_data_dir
from classifier.jobs.runner import JobRunner, RunnableModel
from classifier.jobs.store import open_job_store
from classifier.model.engine import InferenceEngine
from classifier.model.repository import ModelRepository, ServedModel
from classifier.model.runtime import load_model
from classifier.security.auth import AccessControl, document_api_keys
from classifier.security.cors import install_cors
from classifier.web import routes as web
from classifier.web.headers import SecurityHeadersMiddleware

DESCRIPTION = """
Classifies short sequences of video frames (by default 24 grayscale 64x64 frames of rodent
behaviour) with an ONNX model described by its manifest.

* **Native API** (`/v1`): upload the frames as multipart `frames`, get the label, confidence,
  every label's probability, the top k, the model's name and version and timings.
* **Recordings** (`/v1/models/{name}/recordings`, `/v1/jobs`): submit a whole video or image
  sequence, follow its job, download per-frame labels, bouts, time budgets and an ethogram.
* **Seed-compatible** `POST /predict`: the original service's contract, unchanged.
* **Operations**: `/health/live`, `/health/ready`, `/metrics` (Prometheus).
* **In a browser**: `/` is a web page for browsers (JSON for other clients); this page and
  `/redoc` are served from the service's own files.

Every response carries `X-Request-ID` (yours, echoed, or a new one); errors on `/v1` are RFC 9457
problem details that include it.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build one independent app; nothing is shared with other apps built in the same process."""
    settings = settings or Settings()
    service = ServiceState(settings=settings)

    def key_ring_event(event: str, level: str, fields: Mapping[str, object]) -> None:
        if service.logs is not None:
            service.logs.app(event, level=level, **fields)

    # Reads the keys file now: a missing or malformed one stops the app before it serves.
    service.access_control = AccessControl.from_settings(settings, on_event=key_ring_event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs = LogShipper.from_settings(settings, on_drop=service.metrics.dropped_log_records.inc)
        service.logs = logs
        logs.app(
            "startup",
            version=__version__,
            model_dir=str(settings.model_dir),
            fluentd=f"{settings.fluentd_host}:{settings.fluentd_port}"
            if settings.fluentd_host
            else None,
        )
        try:
            try:
                model = await anyio.to_thread.run_sync(
                    lambda: load_model(
                        settings.model_dir, intra_op_threads=settings.intra_op_threads
                    )
                )
            except ModelLoadError as exc:
                logs.app("model_load_failed", level="critical", error=str(exc))
                raise
            engine = InferenceEngine(
                model,
                service.metrics,
                max_batch=settings.max_batch,
                max_delay=settings.batch_delay_ms / 1000,
                inline_below=settings.inline_inference_ms / 1000,
            )
            await engine.start()
            service.models = ModelRepository([ServedModel(model=model, engine=engine)])
            try:
                data = await anyio.to_thread.run_sync(prepare_data_dir, settings.data_dir)
                store = await anyio.to_thread.run_sync(
                    open_job_store, settings.database_url, data.store_path
                )
            except DataDirError as exc:
                logs.app("data_dir_unusable", level="critical", error=str(exc))
                raise
            applied: list[int] = []
            try:
                applied = await anyio.to_thread.run_sync(store.prepare)
            except JobStoreUnavailableError as exc:
                # Readiness never waits for the database: clips are served without it, the job
                # routes answer 503 until it is back, and the schema is checked at first use.
                logs.app("job_store_unavailable", level="warning", error=exc.detail)
            service.data, service.jobs = data, store
            service.metrics.watch_job_store(
                lambda: {status.value: count for status, count in store.counts().items()}
            )
            if settings.run_jobs:
                runner = JobRunner(
                    store,
                    data,
                    settings,
                    [RunnableModel(model.name, settings.model_dir)],
                    service.metrics,
                    logs,
                )
                service.runner = runner
                await runner.start()
            service.ready = True
            logs.app(
                "model_loaded",
                model=model.name,
                model_version=model.version,
                sha256=model.manifest.sha256,
                labels=list(model.manifest.labels),
            )
            if applied:
                logs.app("job_store_migrated", versions=applied)
            if service.access_control is not None:
                logs.app(
                    "api_keys_loaded",
                    file=str(settings.api_keys_file),
                    keys=service.access_control.keys.active_count,
                )
            yield
        finally:
            service.ready = False
            if service.runner is not None:
                # Running jobs go back to the queue, for this or another process to resume.
                await service.runner.stop()
            if service.models is not None:
                for served in service.models:
                    await served.engine.stop()
            if service.jobs is not None:
                service.jobs.close()
            logs.app("shutdown")
            # Bounded (about 1 s when fluentd is stalled), but still kept off the event loop.
            await anyio.to_thread.run_sync(logs.close)
            service.metrics.close()

    docs_open = settings.docs_access == "open"
    app = FastAPI(
        title="Image-sequence classifier",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are our own (classifier.web): self-hosted assets, their own CSP;
        # CLASSIFIER_DOCS_ACCESS=off: no docs UI and no schema at all.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs_open else None,
    )
    app.state.service = service
    for router in (
        predict.router,
        models.router,
        recordings.router,
        jobs.router,
        health.router,
        meta.router,
        oip.router,
    ):
        app.include_router(router)
    if docs_open:
        app.include_router(web.docs_router)
    web.mount_assets(app)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=service)
    if service.access_control is not None:
        document_api_keys(app)
    app.add_middleware(SecurityHeadersMiddleware)  # every response, errors too
    if settings.cors_origins:
        install_cors(app, settings.cors_origins)  # last: outermost
    return app
