"""``python -m classifier worker``: a process that only runs jobs, beside HTTP replicas started
with ``CLASSIFIER_RUN_JOBS=false``. It proves it is alive by touching a health file (no port to
probe), and on SIGTERM or SIGINT drains: running analyses stop and their leases are released, so
another worker resumes them at once instead of after the lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import anyio.to_thread

from classifier import __version__
from classifier.core.config import Settings
from classifier.core.errors import JobStoreUnavailableError
from classifier.core.logs import LogShipper
from classifier.core.metrics import Metrics
from classifier.jobs.data_dir import DataDir
from classifier.jobs.runner import JobRunner, RunnableModel
from classifier.jobs.store import JobStore

#: How often the health file is touched; the probes allow several missed touches.
HEALTH_TOUCH_S = 5.0


async def run_worker(
    settings: Settings, store: JobStore, data: DataDir, models: list[RunnableModel]
) -> None:
    """Run jobs until SIGTERM or SIGINT, then drain."""
    metrics = Metrics()
    logs = LogShipper.from_settings(settings, on_drop=metrics.dropped_log_records.inc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = JobRunner(store, data, settings, models, metrics, logs)
    health = settings.worker_health_file
    try:
        try:
            applied = await anyio.to_thread.run_sync(store.prepare)
            if applied:
                logs.app("job_store_migrated", versions=applied)
        except JobStoreUnavailableError as exc:
            # The runner keeps polling; claims succeed once the database is back.
            logs.app("job_store_unavailable", level="warning", error=exc.detail)
        await runner.start()
        logs.app(
            "worker_started",
            version=__version__,
            worker=runner.worker_id,
            models=[model.name for model in models],
            job_workers=settings.job_workers,
        )
        while not stop.is_set():
            # Touched whatever the database does: the probe asks "is this process alive and
            # its loop turning", not "is PostgreSQL up" (which would restart every worker).
            if health is not None:
                await anyio.to_thread.run_sync(_touch, health)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_TOUCH_S):
                    await stop.wait()
        logs.app("worker_draining", worker=runner.worker_id)
    finally:
        await runner.stop()
        store.close()
        if health is not None:
            health.unlink(missing_ok=True)
        logs.app("worker_stopped", worker=runner.worker_id)
        await anyio.to_thread.run_sync(logs.close)
        metrics.close()


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
