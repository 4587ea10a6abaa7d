"""Several replicas on one PostgreSQL, on loopback: two HTTP processes (``serve`` with
``CLASSIFIER_RUN_JOBS=false``) and job workers (``worker``); a worker killed mid-job costs only
time, a worker paused past its lease has its late completion refused, and a database outage
leaves clips served while the job routes answer 503 until it returns."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from behaviour_clips import clip_to_png_bytes, generate_clip, generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from harness.processes import free_port
from tests.support.frames import files
from tests.support.held_analysis import (
    NotHeldError,
    held_until_progress,
    hold_part_way,
    resume,
)
from tests.support.postgres import private_postgres, scratch_database
from tests.support.recording_files import video_bytes, wait_for_status
from tests.support.server import classifier_env, running_classifier

pytestmark = pytest.mark.integration

SUBMIT = "/v1/models/rodent-behaviour/recordings"
CLASSIFY = "/v1/models/rodent-behaviour/classify"
#: Fast polls and a short lease, so take-overs happen within seconds.
CLUSTER_ENV = {
    "CLASSIFIER_WORKERS": "1",
    "CLASSIFIER_JOB_POLL_SECONDS": "0.2",
    "CLASSIFIER_JOB_LEASE_SECONDS": "2",
    "CLASSIFIER_JOB_WORKERS": "2",
    "CLASSIFIER_ACCESS_LOG_STDOUT": "false",
}
RECORDINGS = 8
FRAMES = 600
WAIT_S = 120.0


@pytest.fixture(scope="module")
def recordings() -> list[bytes]:
    """Eight distinct 20 s H.264 recordings."""
    return [video_bytes(generate_recording(100 + n, FRAMES)[0]) for n in range(RECORDINGS)]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    health: Path

    def records(self) -> list[dict[str, Any]]:
        """What the worker has written so far (it flushes each line), also once it is gone."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]


@contextmanager
def running_worker(env: dict[str, str], tmp: Path, name: str) -> Iterator[Worker]:
    """``python -m classifier worker`` in a session of its own (so a signal to the group reaches
    its analysis processes too), once it has created its health file."""
    health = tmp / f"{name}.alive"
    worker_env = classifier_env(
        DEFAULT_MODEL_DIR, free_port(), **env, CLASSIFIER_WORKER_HEALTH_FILE=str(health)
    )
    log = tmp / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "classifier", "worker"],
            env=worker_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(process, log, health)
        try:
            wait_until(lambda: health.exists() or process.poll() is not None, "health file")
            assert process.poll() is None, log.read_text()
            yield worker
        finally:
            with_signal(process, signal.SIGCONT)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def with_signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signum)


def wait_until(condition: Any, what: str, timeout: float = WAIT_S) -> None:
    """Poll ``condition`` (a few times a second) until it holds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def wait_async(condition: Any, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        found = await condition()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def client_for(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client


async def submit(client: httpx.AsyncClient, video: bytes, name: str) -> httpx.Response:
    return await client.post(SUBMIT, files=[("video", (name, video, "video/mp4"))])


def single_process_frames(videos: list[bytes], tmp: Path) -> list[str]:
    """frames.csv of each recording from ``python -m classifier analyze``: one process, no
    store, no HTTP."""
    inputs = []
    for index, video in enumerate(videos):
        path = tmp / f"rec{index}.mp4"
        path.write_bytes(video)
        inputs.append(str(path))
    out = tmp / "single"
    env = classifier_env(DEFAULT_MODEL_DIR, 0)
    subprocess.run(
        [sys.executable, "-m", "classifier", "analyze", *inputs, "--out", str(out)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return [(out / f"rec{i}" / "frames.csv").read_text() for i in range(len(videos))]


@pytest.mark.timeout(300)
async def test_replicas_and_workers_on_one_database_survive_a_killed_and_a_paused_worker(
    recordings: list[bytes], postgres_url: str, tmp_path: Path, data_dir: Path
) -> None:
    env = {**CLUSTER_ENV, "CLASSIFIER_DATABASE_URL": postgres_url}
    api_env = {**env, "CLASSIFIER_RUN_JOBS": "false"}
    with (
        running_classifier(DEFAULT_MODEL_DIR, env=api_env) as api_a,
        running_classifier(DEFAULT_MODEL_DIR, env=api_env) as api_b,
        running_worker(env, tmp_path, "first") as first,
        running_worker(env, tmp_path, "second") as second,
        running_worker(env, tmp_path, "third") as third,
    ):
        async with client_for(api_a.url) as a, client_for(api_b.url) as b:
            replicas = [a, b]
            ids: list[str] = []
            documents: list[dict[str, Any]] = []
            for index, video in enumerate(recordings):
                submitted = await submit(replicas[index % 2], video, f"rec{index}.mp4")
                assert submitted.status_code == 202, submitted.text
                job_id = submitted.json()["id"]
                ids.append(job_id)
                # Read through the other replica: the job is there at once.
                other = await replicas[(index + 1) % 2].get(f"/v1/jobs/{job_id}")
                assert other.status_code == 200
                documents.append(other.json())

            async def analysing(workers: list[Worker]) -> tuple[Worker, str] | None:
                """A worker analysing a job now, and the job: its analysis is held stopped
                part-way (progress seen through an API), since a job lasts a fraction of a
                second; the signal to the worker's group below stops or resumes it with the
                worker."""
                for worker in workers:
                    for event in reversed(worker.events("job_started")):
                        job_id, pid = str(event["job_id"]), int(event["pid"])
                        if (await a.get(f"/v1/jobs/{job_id}")).json()["status"] != "running":
                            continue
                        try:
                            os.kill(pid, signal.SIGSTOP)
                            await held_until_progress(a, pid, job_id)
                        except (ProcessLookupError, NotHeldError):
                            continue  # it finished first: try the next one
                        return worker, job_id
                return None

            workers = [first, second, third]
            killed, killed_job = await wait_async(lambda: analysing(workers), "a running job")
            with_signal(killed.process, signal.SIGKILL)
            others = [worker for worker in workers if worker is not killed]
            paused, paused_job = await wait_async(lambda: analysing(others), "another one")
            with_signal(paused.process, signal.SIGSTOP)  # the worker too, its analysis still held
            spare = next(worker for worker in others if worker is not paused)

            def taken_over() -> bool:
                return any(
                    e["job_id"] == paused_job and e["attempt"] >= 2
                    for w in (killed, spare)
                    for e in w.events("job_started")
                )

            await asyncio.to_thread(wait_until, taken_over, "the paused worker's job taken over")
            with_signal(paused.process, signal.SIGCONT)

            finals = []
            for index, job_id in enumerate(ids):
                reader = replicas[(index + 1) % 2]  # every status through the other replica
                finals.append(await wait_for_status(reader, job_id, ["succeeded"], timeout=WAIT_S))

            def paused_let_go() -> bool:
                return any(e["job_id"] == paused_job for e in paused.events("job_stopped")) or any(
                    e["job_id"] == paused_job for e in paused.events("job_released")
                )

            await asyncio.to_thread(wait_until, paused_let_go, "the paused worker letting go")
            results = [(await b.get(f"/v1/jobs/{job_id}/frames.csv")).text for job_id in ids]

    assert {d["status"] for d in documents} <= {"queued", "running"}
    assert [d["recording"]["filename"] for d in documents] == [
        f"rec{n}.mp4" for n in range(RECORDINGS)
    ]
    assert [f["status"] for f in finals] == ["succeeded"] * RECORDINGS
    assert [f["recording"]["frames"] for f in finals] == [FRAMES] * RECORDINGS
    # None twice: eight completions in all, one per job, and the paused worker's refused.
    finished = Counter(
        e["job_id"] for w in (killed, paused, spare) for e in w.events("job_finished")
    )
    assert finished == Counter(ids)
    assert paused_job not in {e["job_id"] for e in paused.events("job_finished")}
    stopped = [e for e in paused.events("job_stopped") if e["job_id"] == paused_job]
    assert [e["reason"] for e in stopped] == ["taken over by another process"]
    assert killed_job in ids
    assert results == single_process_frames(recordings, tmp_path)


async def test_a_database_outage_leaves_clips_served_and_jobs_resume_when_it_returns(
    recordings: list[bytes], tmp_path: Path
) -> None:
    clip = files("frames", clip_to_png_bytes(generate_clip("walk", 1)))
    with private_postgres() as database, scratch_database(database.url) as url:
        env = {**CLUSTER_ENV, "CLASSIFIER_DATABASE_URL": url}
        with running_classifier(DEFAULT_MODEL_DIR, env=env) as server:
            async with client_for(server.url) as client:
                submitted = await submit(client, recordings[0], "before.mp4")
                assert submitted.status_code == 202, submitted.text
                job_id = submitted.json()["id"]
                # Held part-way through the outage, so that the job spans it.
                pid, _ = await hold_part_way(client, server, job_id)
                await asyncio.to_thread(database.stop)
                clips = [await client.post(CLASSIFY, files=clip) for _ in range(5)]
                ready = await client.get("/health/ready")
                refused = await submit(client, recordings[1], "during.mp4")
                status = await client.get(f"/v1/jobs/{job_id}")
                await asyncio.to_thread(database.start)
                resume(pid)
                done = await wait_for_status(client, job_id, ["succeeded"], timeout=WAIT_S)
                after = await submit(client, recordings[1], "after.mp4")
                assert after.status_code == 202, after.text
                later = await wait_for_status(
                    client, after.json()["id"], ["succeeded"], timeout=WAIT_S
                )

    assert [c.status_code for c in clips] == [200] * 5
    assert {c.json()["label"] for c in clips} == {"walk"}
    assert ready.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == "Job store unavailable"
    assert status.status_code == 503
    assert status.headers["retry-after"] == "5"
    assert done["recording"]["frames"] == FRAMES
    assert later["recording"]["frames"] == FRAMES


async def test_a_worker_drains_on_sigterm_and_the_api_replica_runs_no_jobs(
    postgres_url: str, tmp_path: Path
) -> None:
    # Long enough to be mid-analysis when the signal comes: 8 x 600 frames.
    long_video = video_bytes(generate_recording(200, FRAMES * 8)[0])
    env = {**CLUSTER_ENV, "CLASSIFIER_DATABASE_URL": postgres_url}
    with running_classifier(DEFAULT_MODEL_DIR, env={**env, "CLASSIFIER_RUN_JOBS": "false"}) as api:
        async with client_for(api.url) as client:
            with running_worker(env, tmp_path, "drained") as worker:
                # The idle worker touches its health file; only then the job, so that the wait
                # for a touch cannot outlast an analysis (it runs at ~1000 frames/s).
                touched = worker.health.stat().st_mtime
                await asyncio.to_thread(
                    wait_until, lambda: worker.health.stat().st_mtime > touched, "a touch"
                )
                submitted = await submit(client, long_video, "long.mp4")
                job_id = submitted.json()["id"]
                # Held part-way: the SIGTERM finds it mid-analysis however fast it runs (the
                # worker's stop waits out its grace period on the held analysis, then kills it).
                await hold_part_way(client, lambda: worker.log.read_text(errors="replace"), job_id)
                worker.process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(worker.process.wait, 60)
                released = (await client.get(f"/v1/jobs/{job_id}")).json()
                health_left = worker.health.exists()
                events = {r.get("event") for r in worker.records()}
        api.process.send_signal(signal.SIGTERM)
        api_output = api.output()

    assert submitted.status_code == 202
    assert code == 0
    assert released["status"] == "queued"  # back in the queue for the next worker
    assert released["started_at"] is not None
    assert not health_left
    assert {"worker_started", "job_started", "worker_draining", "job_released"} <= events
    assert '"event":"job_started"' not in api_output.replace(" ", "")  # the API runs no job


def test_migrate_applies_the_schema_once_and_names_an_unreachable_database(
    postgres_url: str,
) -> None:
    def migrate(url: str) -> subprocess.CompletedProcess[str]:
        env = classifier_env(DEFAULT_MODEL_DIR, 0, CLASSIFIER_DATABASE_URL=url)
        return subprocess.run(
            [sys.executable, "-m", "classifier", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first, second = migrate(postgres_url), migrate(postgres_url)
    away = migrate(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")

    assert (first.returncode, first.stdout) == (0, "migrate: PostgreSQL: applied 1\n")
    assert (second.returncode, second.stdout) == (0, "migrate: PostgreSQL: up to date\n")
    assert away.returncode == 2
    assert away.stderr.startswith("classifier migrate: the job database is unavailable:")
