"""The runner inside a real app: a job whose holders kept dying is failed saying so, a crashed
analysis process fails only its job, and retention removes finished jobs and stray uploads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from classifier.core.config import Settings
from classifier.core.metrics import Metrics
from classifier.jobs.data_dir import prepare_data_dir
from classifier.jobs.records import ModelSummary, NewJob, RecordingSummary
from classifier.jobs.runner import ORPHAN_UPLOAD_AGE_S, JobRunner
from classifier.jobs.sqlite_store import SQLiteJobStore
from classifier.main import create_app
from tests.support.app_client import lifespan_client
from tests.support.recording_files import (
    frame_parts,
    png_sequence,
    uniform_frames,
    video_bytes,
    video_part,
    wait_for_status,
)

SUBMIT = "/v1/models/brightness/recordings"
FAST = {"job_poll_seconds": 0.1, "job_lease_seconds": 5}


def _settings(model_dir: Path, **chosen: object) -> Settings:
    values: dict[str, object] = {"fluentd_host": None, "access_log_stdout": False, **FAST}
    values.update(chosen)
    return Settings(model_dir=model_dir, **values)  # type: ignore[arg-type]


async def test_a_job_whose_holders_keep_dying_is_failed_saying_so(
    model_dir: Path, data_dir: Path
) -> None:
    app = create_app(_settings(model_dir, job_max_attempts=3))
    async with lifespan_client(app) as client:
        service = app.state.service
        runner = service.runner
        await runner.stop()  # this process takes no job until the replacement below
        submitted = await client.post(
            SUBMIT, files=video_part(video_bytes(uniform_frames([9] * 30)))
        )
        job_id = submitted.json()["id"]
        # Three holders claim the job in turn and die with it: their leases lapse unreleased.
        for dead in ("a", "b", "c"):
            held = service.jobs.claim(dead, lease_s=0.01, max_running=1, models=["brightness"])
            assert held is not None
            assert held.job.id == job_id
            await asyncio.sleep(0.02)
        replacement = JobRunner(
            service.jobs,
            service.data,
            service.settings,
            list(runner.models.values()),
            service.metrics,
            service.logs,
        )
        await replacement.start()
        try:
            failed = await wait_for_status(client, job_id, ["failed"])
        finally:
            await replacement.stop()

    assert failed["error"] == {
        "type": "too_many_attempts",
        "message": "the job was started 3 times and each time its worker process stopped before "
        "finishing it (killed, crashed or restarted without releasing it); it is not started "
        "again",
    }
    assert not (data_dir / "uploads" / job_id).exists()


async def test_an_analysis_process_that_crashes_fails_only_its_job(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(_settings(model_dir, access_log_stdout=False))
    # A long image sequence: the analysis is still running when it is killed.
    frames = frame_parts(png_sequence([40] * 4000))
    async with lifespan_client(app) as client:
        submitted = await client.post(SUBMIT, files=frames, data={"fps": "30"})
        job_id = submitted.json()["id"]
        await wait_for_status(client, job_id, ["running"])
        pid = await _analysis_pid(capsys, job_id)
        os.kill(pid, signal.SIGKILL)  # what a segfaulting decoder or the OOM killer does
        failed = await wait_for_status(client, job_id, ["failed"])
        health = await client.get("/health/ready")
        # The service goes on: the next job runs.
        next_job = await client.post(SUBMIT, files=frame_parts(png_sequence([40] * 24)),
                                     data={"fps": "30"})  # fmt: skip
        done = await wait_for_status(client, next_job.json()["id"], ["succeeded"])

    assert failed["error"] == {
        "type": "analysis_crashed",
        "message": "the analysis process was killed by SIGKILL before it finished",
    }
    assert health.status_code == 200
    assert done["recording"]["frames"] == 24


async def _analysis_pid(capsys: pytest.CaptureFixture[str], job_id: str) -> int:
    """The analysis process's pid, from the job_started event the app wrote to stdout."""
    seen = ""
    for _ in range(200):
        seen += capsys.readouterr().out
        for line in seen.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "job_started" and record.get("job_id") == job_id:
                    return int(record["pid"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no job_started event for {job_id} in {seen!r}")


def _finished_job(store: SQLiteJobStore, job_id: str) -> None:
    store.create(
        NewJob(
            id=job_id,
            model=ModelSummary("brightness", "1", "0" * 64),
            recording=RecordingSummary("x.mp4"),
            input_kind="video",
            input_path="/nowhere",
            upload_dir=None,
            parameters={},
        )
    )
    claim = store.claim("w", lease_s=60, max_running=1, models=["brightness"])
    assert claim is not None
    assert store.fail(job_id, claim.token, error_type="x", message="y")


def test_retention_removes_finished_jobs_their_files_and_stray_uploads(
    tmp_path: Path, model_dir: Path
) -> None:
    data = prepare_data_dir(tmp_path / "data")
    store = SQLiteJobStore(data.store_path)
    _finished_job(store, "old")
    (data.results_dir("old")).mkdir(parents=True)
    (data.results_dir("old") / "frames.csv").write_text("frame\n")
    stray = data.upload_dir("stray")  # an upload whose server died before it became a job
    stray.mkdir(parents=True)
    (stray / "part").write_bytes(b"\0")
    long_ago = time.time() - ORPHAN_UPLOAD_AGE_S - 60
    os.utime(stray / "part", (long_ago, long_ago))
    os.utime(stray, (long_ago, long_ago))
    fresh = data.upload_dir("receiving")  # one being received right now
    fresh.mkdir(parents=True)
    settings = _settings(model_dir, job_retention_hours=72)

    def runner_at(offset_hours: float) -> JobRunner:
        clock = lambda: time.time() + offset_hours * 3600  # noqa: E731
        return JobRunner(store, data, settings, [], Metrics(), None, clock=clock)

    runner_at(71).sweep()
    assert store.get("old") is not None
    assert data.results_dir("old").is_dir()
    runner_at(73).sweep()

    assert store.get("old") is None
    assert not data.job_dir("old").exists()
    assert not stray.exists()
    assert fresh.is_dir()


@pytest.mark.parametrize("status", ["queued", "running"])
async def test_metrics_count_jobs_by_status_from_the_store(model_dir: Path, status: str) -> None:
    app = create_app(_settings(model_dir))
    async with lifespan_client(app) as client:
        store = app.state.service.jobs
        _finished_job(store, "done-before")
        store.create(
            NewJob(
                id="waiting",
                model=ModelSummary("not-served", "1", "0" * 64),
                recording=RecordingSummary("x.mp4"),
                input_kind="video",
                input_path="/nowhere",
                upload_dir=None,
                parameters={},
            )
        )
        if status == "running":
            assert store.claim("elsewhere", lease_s=60, max_running=5, models=["not-served"])
        metrics = (await client.get("/metrics")).text

    assert 'classifier_jobs{status="failed"} 1.0' in metrics
    assert f'classifier_jobs{{status="{status}"}} 1.0' in metrics
    other = "running" if status == "queued" else "queued"
    assert f'classifier_jobs{{status="{other}"}} 0.0' in metrics
