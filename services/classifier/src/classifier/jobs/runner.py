"""The job runner: every server process polls the store, claims what the global limit allows, and
supervises each claimed job's analysis in a child process (``analysis_process``), forked from a
fork server that has the analysis code imported already.

While a job runs its holder renews the lease and writes progress every ``job_poll_seconds``; a
renewal refused means the job was cancelled, deleted or taken over, and the child is stopped. A
child that exits without an answer (a crashing decoder, the kernel's OOM killer) fails only its
job. Stopping the runner (the app's shutdown, SIGTERM) stops the children and releases their jobs
to the queue for the next start. A holder that died without releasing leaves its lease to lapse;
another process then takes the job over from its kept upload, until ``job_max_attempts`` starts
have been spent. The runner also expires finished jobs and their files after the retention time.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import anyio.to_thread

from classifier.core.config import Settings, available_cores
from classifier.core.logs import LogShipper
from classifier.core.metrics import Metrics
from classifier.jobs.analysis_process import AnalysisTask, run_analysis
from classifier.jobs.data_dir import DataDir
from classifier.jobs.document import job_document
from classifier.jobs.records import Claim, Job, JobStatus, Progress, RecordingSummary
from classifier.jobs.store import JobStore

#: How often a supervisor looks at its child's messages and exit (the store is written less often).
SUPERVISE_TICK_S = 0.1
#: How long a child has after SIGTERM before it is killed.
CHILD_STOP_GRACE_S = 5.0
#: What the fork server imports before forking job processes (see ``analysis_context``).
PRELOADED_MODULES = (
    "classifier.jobs.analysis_process",
    "classifier.recordings.analysis",
    "classifier.recordings.exports",
    "classifier.recordings.source",
    "classifier.model.runtime",
)
#: How often finished jobs are checked against the retention time.
RETENTION_SWEEP_S = 60.0
#: An upload folder without a job that has not changed for this long is a leftover of a crash.
ORPHAN_UPLOAD_AGE_S = 6 * 3600.0


def analysis_context() -> ForkServerContext:
    """Where job processes come from: a fork server that has imported the analysis code (numpy,
    onnxruntime, PyAV, matplotlib) once, so a job starts in a fraction of a second, not after
    seconds of imports. The server is a fresh interpreter (not a fork of this threaded one),
    started on first use, one per server process."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(list(PRELOADED_MODULES))
    return context


def new_worker_id() -> str:
    """Names this process in leases: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class RunnableModel:
    """A model this process can run jobs for: its name and the folder the child loads it from."""

    name: str
    model_dir: Path


@dataclass(slots=True)
class _Running:
    """One claimed job in this process: its analysis process and what it has reported."""

    claim: Claim
    process: BaseProcess
    conn: Connection
    started: float  # monotonic, this attempt
    recording: dict[str, Any]
    frames_done: int = 0
    frames_total: int | None = None
    outcome: tuple[Any, ...] | None = None
    stopped_by_us: bool = False
    #: The store refused a renewal: cancelled, deleted or taken over.
    lost: bool = False
    recording_changed: bool = False


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        data: DataDir,
        settings: Settings,
        models: list[RunnableModel],
        metrics: Metrics,
        logs: LogShipper | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.data = data
        self.settings = settings
        self.models = {model.name: model for model in models}
        self.metrics = metrics
        self.logs = logs
        self.worker_id = new_worker_id()
        self._clock = clock
        self._context = analysis_context()
        self._loop_task: asyncio.Task[None] | None = None
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, _Running] = {}
        self._stopping = False
        self._wake = asyncio.Event()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._poll_loop(), name="job-runner")

    def wake(self) -> None:
        """A job was just queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop every child and give its job back to the queue (it resumes at the next start)."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for running in list(self._running.values()):
            running.stopped_by_us = True
            await anyio.to_thread.run_sync(_stop_child, running.process)
        if self._supervisors:
            await asyncio.gather(*self._supervisors.values(), return_exceptions=True)

    # --- polling ----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        # Started (and its imports done) before the first claim, so no lease ticks away while a
        # job waits for the fork server to come up.
        await anyio.to_thread.run_sync(multiprocessing.forkserver.ensure_running)
        next_sweep = 0.0
        while not self._stopping:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + RETENTION_SWEEP_S
                    # Once per interval for the whole cluster, whichever process asks first.
                    if await anyio.to_thread.run_sync(
                        self.store.take_turn, "retention", RETENTION_SWEEP_S
                    ):
                        await anyio.to_thread.run_sync(self.sweep)
                while len(self._running) < self.settings.job_workers and not self._stopping:
                    claim = await anyio.to_thread.run_sync(self._claim)
                    if claim is None:
                        break
                    await self._begin(claim)
            except Exception as exc:  # a store hiccup (locked, disk full) must not end polling
                self._app("job_runner_error", level="error", error=f"{type(exc).__name__}: {exc}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.job_poll_seconds):
                    await self._wake.wait()

    def _claim(self) -> Claim | None:
        return self.store.claim(
            self.worker_id,
            lease_s=self.settings.job_lease_seconds,
            max_running=self.settings.job_workers,
            models=list(self.models),
        )

    async def _begin(self, claim: Claim) -> None:
        job = claim.job
        if job.attempts > self.settings.job_max_attempts:
            interrupted = job.attempts - 1
            message = (
                f"the job was started {interrupted} times and each time its worker process "
                "stopped before finishing it (killed, crashed or restarted without releasing "
                "it); it is not started again"
            )
            await self._fail(claim, "too_many_attempts", message, job)
            return
        task = AnalysisTask(
            job_id=job.id,
            model_dir=str(self.models[job.model.name].model_dir),
            input_kind=job.input_kind,
            input_path=job.input_path,
            parameters=dict(job.parameters),
            recording=job.recording.as_dict(),
            subject=job.subject,
            session=job.session,
            metadata=dict(job.metadata),
            created_at=datetime.fromtimestamp(job.created_at, UTC).isoformat(),
            out_dir=str(self._work_dir(claim)),
            job_document=dict(job_document(job)),
            max_frame_pixels=self.settings.max_frame_pixels,
            processes=self.settings.job_processes or available_cores(),
        )
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_analysis, args=(task, sender), name=f"job-{job.id[:8]}", daemon=True
        )
        running = _Running(
            claim=claim,
            process=process,
            conn=receiver,
            started=time.monotonic(),
            recording=job.recording.as_dict(),
            frames_total=job.progress.frames_total,
        )
        self._running[job.id] = running
        # Renewing from the claim on: starting the process may take a while on a busy machine,
        # and a lease must not lapse under a live holder.
        keeper = asyncio.create_task(self._keep_lease(running), name=f"lease-{job.id[:8]}")
        try:
            await anyio.to_thread.run_sync(process.start)
        except BaseException:
            keeper.cancel()
            self._running.pop(job.id, None)
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.store.release, job.id, claim.token)
            raise
        finally:
            sender.close()  # the child holds its end; EOF here then means the child is gone
        self._app(
            "job_started",
            job_id=job.id,
            attempt=job.attempts,
            model=job.model.name,
            filename=job.recording.filename,
            pid=process.pid,
        )
        self._supervisors[job.id] = asyncio.create_task(
            self._supervise(running, keeper), name=f"job-{job.id[:8]}"
        )

    def _work_dir(self, claim: Claim) -> Path:
        return self.data.job_dir(claim.job.id) / f"work-{claim.token}"

    # --- supervision ------------------------------------------------------------------------

    async def _supervise(self, running: _Running, keeper: asyncio.Task[None]) -> None:
        claim = running.claim
        job_id = claim.job.id
        try:
            try:
                await self._watch(running)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            await self._conclude(running)
        except Exception as exc:
            self._app(
                "job_runner_error",
                level="error",
                job_id=job_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            await anyio.to_thread.run_sync(_stop_child, running.process)
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.store.release, job_id, claim.token)
        finally:
            running.conn.close()
            self._running.pop(job_id, None)
            self._supervisors.pop(job_id, None)
            self._wake.set()  # a slot is free

    async def _watch(self, running: _Running) -> None:
        """Follow the child until it exits; stop it once the job is no longer ours."""
        while True:
            self._drain(running)
            if not running.process.is_alive():
                await anyio.to_thread.run_sync(running.process.join)
                self._drain(running)
                return
            if running.lost:
                running.stopped_by_us = True
                await anyio.to_thread.run_sync(_stop_child, running.process)
                return
            await asyncio.sleep(SUPERVISE_TICK_S)

    async def _keep_lease(self, running: _Running) -> None:
        """Renew the lease (writing progress) every poll interval, until the store refuses."""
        while True:
            await asyncio.sleep(self.settings.job_poll_seconds)
            try:
                held = await anyio.to_thread.run_sync(self._renew, running)
            except Exception as exc:  # a busy store: try again at the next interval
                self._app(
                    "job_lease_renewal_failed",
                    level="warning",
                    job_id=running.claim.job.id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if not held:
                running.lost = True
                return

    def _drain(self, running: _Running) -> None:
        try:
            while running.conn.poll():
                message = running.conn.recv()
                kind = message[0]
                if kind == "progress":
                    running.frames_done, running.frames_total = int(message[1]), message[2]
                elif kind == "recording":
                    running.recording = dict(message[1])
                    running.recording_changed = True
                else:
                    running.outcome = tuple(message)
        except (EOFError, OSError):
            pass

    def _renew(self, running: _Running) -> bool:
        claim = running.claim
        if running.recording_changed:
            running.recording_changed = False
            summary = RecordingSummary.from_dict(running.recording)
            self.store.describe_recording(claim.job.id, claim.token, summary)
        return self.store.renew(
            claim.job.id,
            claim.token,
            lease_s=self.settings.job_lease_seconds,
            progress=Progress(
                running.frames_done, running.frames_total, self._seconds_left(running)
            ),
        )

    @staticmethod
    def _seconds_left(running: _Running) -> float | None:
        done, total = running.frames_done, running.frames_total
        elapsed = time.monotonic() - running.started
        if not done or not total or elapsed <= 0:
            return None
        return max(0.0, (total - done) * elapsed / done)

    async def _conclude(self, running: _Running) -> None:
        claim = running.claim
        job = claim.job
        outcome = running.outcome
        if running.stopped_by_us and (outcome is None or outcome[0] != "succeeded"):
            await self._let_go(running)
            return
        if outcome is not None and outcome[0] == "succeeded":
            recording = RecordingSummary.from_dict(dict(outcome[1]))
            files = [str(name) for name in outcome[2]]
            results = self.data.results_dir(job.id)
            # Still ours? A holder that was paused past its lease (and whose job another process
            # took over) must not put its files over its successor's; ``finish`` checks again.
            if not await anyio.to_thread.run_sync(self._renew, running):
                await self._let_go(running)
                return
            await anyio.to_thread.run_sync(_replace_dir, self._work_dir(claim), results)
            done = await anyio.to_thread.run_sync(
                lambda: self.store.finish(
                    job.id, claim.token, recording=recording, result_files=files
                )
            )
            if not done:
                await self._let_go(running)
                return
            seconds = time.monotonic() - running.started
            frames = recording.frames or 0
            self.metrics.jobs_finished.labels(JobStatus.SUCCEEDED.value).inc()
            self.metrics.job_frames.inc(frames)
            self.metrics.job_duration.labels(JobStatus.SUCCEEDED.value).observe(seconds)
            if seconds > 0:
                self.metrics.job_frames_per_second.observe(frames / seconds)
            await anyio.to_thread.run_sync(self.data.remove_upload, job.id)
            self._app(
                "job_finished",
                job_id=job.id,
                frames=frames,
                seconds=round(seconds, 3),
                fps=round(frames / seconds, 1) if seconds > 0 else None,
                duration_s=recording.duration_s,
            )
            return
        if outcome is not None and outcome[0] == "failed":
            error_type, message = str(outcome[1]), str(outcome[2])
        else:
            error_type, message = "analysis_crashed", _describe_exit(running.process)
        await self._fail(claim, error_type, message, job, running)

    async def _fail(
        self,
        claim: Claim,
        error_type: str,
        message: str,
        job: Job,
        running: _Running | None = None,
    ) -> None:
        failed = await anyio.to_thread.run_sync(
            lambda: self.store.fail(job.id, claim.token, error_type=error_type, message=message)
        )
        if not failed:
            if running is not None:
                await self._let_go(running)
            return
        seconds = time.monotonic() - running.started if running is not None else 0.0
        self.metrics.jobs_finished.labels(JobStatus.FAILED.value).inc()
        self.metrics.job_duration.labels(JobStatus.FAILED.value).observe(seconds)
        await anyio.to_thread.run_sync(self._remove_attempt_files, claim)
        self._app(
            "job_failed",
            level="warning",
            job_id=job.id,
            frames=running.frames_done if running is not None else 0,
            seconds=round(seconds, 3),
            error_type=error_type,
            error=message,
        )

    def _remove_attempt_files(self, claim: Claim) -> None:
        self.data.remove_upload(claim.job.id)
        shutil.rmtree(self._work_dir(claim), ignore_errors=True)

    async def _let_go(self, running: _Running) -> None:
        """The child is stopped: the job was cancelled, deleted, taken over, or we shut down."""
        claim = running.claim
        job_id = claim.job.id
        await anyio.to_thread.run_sync(
            lambda: shutil.rmtree(self._work_dir(claim), ignore_errors=True)
        )
        released = await anyio.to_thread.run_sync(self.store.release, job_id, claim.token)
        current = await anyio.to_thread.run_sync(self.store.get, job_id)
        if current is None:
            await anyio.to_thread.run_sync(self.data.remove_job, job_id)
            self._app("job_stopped", job_id=job_id, reason="deleted")
        elif current.status is JobStatus.CANCELLED:
            await anyio.to_thread.run_sync(self.data.remove_upload, job_id)
            self._app("job_stopped", job_id=job_id, reason="cancelled")
        elif released and current.status is JobStatus.QUEUED:
            self._app("job_released", job_id=job_id, frames_done=running.frames_done)
        else:
            self._app("job_stopped", job_id=job_id, reason="taken over by another process")

    # --- retention --------------------------------------------------------------------------

    def sweep(self) -> None:
        """Delete finished jobs past the retention time, and upload folders no job owns."""
        now = self._clock()
        cutoff = now - self.settings.job_retention_hours * 3600
        for job in self.store.expired(cutoff):
            self.data.remove_job(job.id)
            if self.store.delete(job.id):
                self._app("job_expired", job_id=job.id, status=job.status.value)
        with contextlib.suppress(OSError):
            for folder in self.data.uploads.iterdir():
                if self.store.get(folder.name) is None and _idle_for(folder) > ORPHAN_UPLOAD_AGE_S:
                    shutil.rmtree(folder, ignore_errors=True)

    def _app(self, event: str, /, *, level: str = "info", **fields: object) -> None:
        if self.logs is not None:
            self.logs.app(event, level=level, worker=self.worker_id, **fields)


def _stop_child(process: BaseProcess) -> None:
    if process.pid is None:  # never started (the runner stopped while starting it)
        return
    if process.is_alive():
        process.terminate()
        process.join(CHILD_STOP_GRACE_S)
    if process.is_alive():
        process.kill()
    process.join()


def _replace_dir(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    source.rename(target)


def _describe_exit(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the analysis process was killed by {name} before it finished"
    return f"the analysis process exited with status {code} before it finished"


def _idle_for(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for _root, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                newest = max(newest, os.stat(os.path.join(_root, name)).st_mtime)
    return time.time() - newest
