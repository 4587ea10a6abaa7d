"""A real classifier process (``python -m classifier``) on loopback, for integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    port: int
    _output: str | None = None

    def output(self) -> str:
        """Everything the process wrote (stdout and stderr together), once it has exited."""
        if self._output is None:
            self._output, _ = self.process.communicate(timeout=30)
        return self._output

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.output()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output()


#: Passed on from the test's environment: the data folder the ``data_dir`` fixture chose.
INHERITED = ("CLASSIFIER_DATA_DIR",)


def classifier_env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSIFIER_") or k in INHERITED}
    env.update(
        PYTHONPATH=str(SRC),
        PYTHONUNBUFFERED="1",
        CLASSIFIER_MODEL_DIR=str(model_dir),
        CLASSIFIER_PORT=str(port),
        CLASSIFIER_HOST="127.0.0.1",
    )
    env.update(extra)
    return env


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Poll /health/ready the way the compose healthcheck does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"classifier exited with {process.returncode} before ready")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"classifier at {url} not ready within {timeout} s")


@contextmanager
def running_classifier(
    model_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "classifier"],
        env=classifier_env(model_dir, port, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", port)
    try:
        wait_ready(server.url, process)
        yield server
    finally:
        server.stop()
