"""Child processes on loopback: free ports, waiting until a process is ready, stopping it.

One definition shared by the e2e harness (native_stack.py), the classifier's integration tests
(tests/support/server.py) and the benchmarks (bench/harness.py), all of which start real servers
and must neither pick a fixed port, nor wait blindly, nor leave a process behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.1

T = TypeVar("T")


class NotReadyError(RuntimeError):
    """A process did not become ready: it exited first, or took longer than allowed."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on now, chosen by the kernel (bind to port 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    interval: float = POLL_INTERVAL,
) -> T:
    """Call ``check`` until it returns something truthy and return that, or raise NotReadyError.

    ``check`` may raise OSError (a refused connection while the process starts), which counts
    as not yet. With ``process`` given, its exit ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            status = process.returncode
            raise NotReadyError(f"{what} exited with status {status} before it was ready")
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{what} was not ready within {timeout:g} s")
        time.sleep(interval)


def http_status(url: str, timeout: float = 2.0) -> int:
    """The status of ``GET url``; OSError (URLError included) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def wait_http_ok(
    url: str,
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
) -> None:
    """``GET url`` until it answers 2xx, as the compose healthcheck does with /health/ready
    (503 while the model warms up, refused before the server listens)."""
    wait_for(lambda: 200 <= http_status(url) < 300, what=what, timeout=timeout, process=process)


def stop(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    grace: float,
    *,
    group: bool = False,
) -> int:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; the exit status.

    ``group``: signal the process's whole session (it was started with
    ``start_new_session=True``), so that workers it forked go too.
    """

    def send(signum: signal.Signals) -> None:
        try:
            if group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except ProcessLookupError:
            pass  # already gone

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
    return process.wait()
