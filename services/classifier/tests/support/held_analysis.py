"""Catch a recording job part-way, however fast its analysis runs.

A 64x64 recording of a few thousand frames is analysed in well under a second, faster than the
runner writes progress to the store (once a lease renewal), so a test that polls for "running
with some frames done" races the job. These helpers take the analysis process (the pid the
``job_started`` event names) and hold it with SIGSTOP, letting it run in slices of a few
milliseconds until the job's document shows frames done: the document is then read while the
job cannot finish. The caller resumes it with ``resume`` (or kills the server around it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.server import ServerProcess

#: How long the analysis runs between two stops: a few hundred 64x64 frames.
SLICE_S = 0.005
#: How long a stopped analysis is left for the runner to renew its lease and write progress.
SETTLE_S = 0.3


def _output_so_far(server: ServerProcess) -> str:
    """What the server wrote so far, read without moving the file offset it writes at."""
    fd = server.sink.fileno()
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0).decode("utf-8", errors="replace")


class NotHeldError(AssertionError):
    """The job was no longer running when its analysis was caught (it had finished)."""


def server_output(server: ServerProcess) -> Callable[[], str]:
    return lambda: _output_so_far(server)


async def analysis_pid(
    output: Callable[[], str],
    job_id: str,
    timeout: float = 60.0,  # noqa: ASYNC109
) -> int:
    """The pid of the job's analysis process, from its ``job_started`` event, as soon as
    ``output()`` (what the server or worker has written so far) shows it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for line in output().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("event") == "job_started" and record.get("job_id") == job_id:
                return int(record["pid"])
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} has no job_started event after {timeout} s")
        await asyncio.sleep(0.002)


async def held_until_progress(
    client: httpx.AsyncClient,
    pid: int,
    job_id: str,
    timeout: float = 60.0,  # noqa: ASYNC109
) -> dict[str, Any]:
    """With the analysis ``pid`` stopped, let it run in slices until the job's document shows
    frames done; returns that document, read while it was held (and leaves it stopped).
    Raises NotHeldError when the job is not running (it finished before it was stopped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await asyncio.sleep(SETTLE_S)
        document: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if document["status"] != "running":
            raise NotHeldError(f"job {job_id} is {document['status']} while held: {document}")
        if document["progress"]["frames_done"] > 0:
            return document
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} reported no progress in {timeout} s: {document}")
        try:
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(SLICE_S)
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            raise NotHeldError(f"job {job_id}: its analysis process {pid} is gone") from None


async def hold_part_way(
    client: httpx.AsyncClient,
    holder: ServerProcess | Callable[[], str],
    job_id: str,
    timeout: float = 60.0,  # noqa: ASYNC109
) -> tuple[int, dict[str, Any]]:
    """Stop the job's analysis once it has reported frames done; returns its pid (still
    stopped) and the job's document read while it was held. ``holder``: the server running
    the job, or a function answering what the process running it has written so far."""
    output = server_output(holder) if isinstance(holder, ServerProcess) else holder
    pid = await analysis_pid(output, job_id, timeout)
    os.kill(pid, signal.SIGSTOP)
    return pid, await held_until_progress(client, pid, job_id, timeout)


def resume(pid: int) -> None:
    """Let a held analysis run on; one its runner has since killed (a lost lease) is left be."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
