"""``python -m classifier``: check the model, then serve it with uvicorn as the settings say."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import uvicorn

from classifier.api.arrival import ArrivalStampingProtocol
from classifier.core.config import Settings
from classifier.core.errors import KeysFileError, ModelLoadError
from classifier.core.metrics import MULTIPROCESS_ENV
from classifier.model.runtime import load_model
from classifier.security.auth import AccessControl


def main() -> int:
    settings = Settings()
    try:
        # Fail before binding a port: one clear line and a non-zero exit.
        load_model(settings.model_dir, intra_op_threads=settings.intra_op_threads)
    except ModelLoadError as exc:
        print(f"classifier: cannot serve the model: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        AccessControl.from_settings(settings)  # the keys file, when one is set, must parse
    except KeysFileError as exc:
        print(f"classifier: cannot use the API keys: {exc}", file=sys.stderr, flush=True)
        return 2
    # uvicorn re-raises a SIGTERM it handled once it has drained and stopped; this no-op
    # handler receives it, so a requested stop ends with status 0 rather than -15.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    workers = settings.worker_processes
    metrics_dir = None
    if workers > 1 and MULTIPROCESS_ENV not in os.environ:
        # Set before the workers start, so each one's metrics land where any can sum them.
        metrics_dir = tempfile.mkdtemp(prefix="classifier-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        serve(settings, workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def serve(settings: Settings, workers: int) -> None:
    uvicorn.run(
        "classifier.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        # httptools, stamping each request's arrival so admission can see its queue wait.
        http=ArrivalStampingProtocol,
        access_log=False,  # the service writes its own structured access records
        timeout_graceful_shutdown=30,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    sys.exit(main())
