"""A real classifier process (``python -m classifier``) on loopback, for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.processes import LOOPBACK, free_port, stop, wait_http_ok

SRC = Path(__file__).resolve().parents[2] / "src"
READY_TIMEOUT = 30.0
STOP_GRACE = 30.0


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    sink: IO[bytes]
    """Where the process writes stdout and stderr: a file, so a chatty server never blocks on a
    full pipe that nobody reads yet."""

    def output(self) -> str:
        """Everything the process wrote (stdout and stderr together), once it has exited."""
        self.process.wait(timeout=STOP_GRACE)
        self.sink.seek(0)
        return self.sink.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        stop(self.process, STOP_GRACE)


#: Passed on from the test's environment: the data folder the ``data_dir`` fixture chose.
INHERITED = ("CLASSIFIER_DATA_DIR",)


def classifier_env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSIFIER_") or k in INHERITED}
    env.update(
        PYTHONPATH=str(SRC),
        PYTHONUNBUFFERED="1",
        CLASSIFIER_MODEL_DIR=str(model_dir),
        CLASSIFIER_PORT=str(port),
        CLASSIFIER_HOST=LOOPBACK,
    )
    env.update(extra)
    return env


@contextmanager
def running_classifier(
    model_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """The classifier serving ``model_dir``, once /health/ready answers 200; stopped after."""
    port = free_port()
    with tempfile.TemporaryFile() as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "classifier"],
            env=classifier_env(model_dir, port, **(env or {})),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        server = ServerProcess(process, f"http://{LOOPBACK}:{port}", port, sink)
        try:
            wait_http_ok(
                f"{server.url}/health/ready",
                what="the classifier",
                timeout=READY_TIMEOUT,
                process=process,
            )
            yield server
        finally:
            server.stop()
