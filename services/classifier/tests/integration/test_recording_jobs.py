"""Recording jobs on a real uvicorn process: an H.264 recording from submit to results, clip
requests served while a long job runs, and jobs that survive a restart or a killed holder."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from behaviour_clips import clip_to_png_bytes, generate_clip, generate_recording
from classifier.api.recording_upload import FLUSH_BYTES
from classifier.core.config import DEFAULT_MODEL_DIR
from harness.processes import free_port
from tests.support.frames import files
from tests.support.held_analysis import hold_part_way, resume
from tests.support.recording_files import leftover_uploads, video_bytes, wait_for_status
from tests.support.server import ServerProcess, classifier_env, running_classifier

pytestmark = pytest.mark.integration

SUBMIT = "/v1/models/rodent-behaviour/recordings"
CLASSIFY = "/v1/models/rodent-behaviour/classify"
SEED = 5
#: Fast polls and a short lease, so take-overs happen within seconds.
JOB_ENV = {
    "CLASSIFIER_WORKERS": "1",
    "CLASSIFIER_JOB_POLL_SECONDS": "0.2",
    "CLASSIFIER_JOB_LEASE_SECONDS": "3",
    "CLASSIFIER_ACCESS_LOG_STDOUT": "true",
}


@pytest.fixture(scope="module")
def recording() -> tuple[bytes, list[str]]:
    """30 s of a generated home-cage recording as H.264 MP4, and the generator's labels."""
    frames, labels = generate_recording(SEED, 900)
    return video_bytes(frames), labels


@pytest.fixture(scope="module")
def long_recording() -> bytes:
    """Twelve minutes (21,600 frames) of H.264: a job that runs for a second or more even at
    full speed, for requests made while it runs."""
    frames, _ = generate_recording(SEED + 1, 900)
    return video_bytes(np.concatenate([frames] * 24))


@pytest.fixture(scope="module")
def medium_recording() -> bytes:
    """A minute and a half (2700 frames): long enough to interrupt, short enough to rerun."""
    frames, _ = generate_recording(SEED + 2, 900)
    return video_bytes(np.concatenate([frames] * 3))


async def _no_server_errors(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.url}: {response.status_code}"


@asynccontextmanager
async def client_of(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, timeout=60, event_hooks={"response": [_no_server_errors]}
    ) as client:
        yield client


def records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def events(output: str, name: str) -> list[dict[str, Any]]:
    return [r for r in records(output) if r["tag"] == "classifier.app" and r["event"] == name]


async def submit(client: httpx.AsyncClient, video: bytes, **fields: str) -> str:
    response = await client.post(SUBMIT, files=[("video", ("cage.mp4", video, "video/mp4"))],
                                 data=fields)  # fmt: skip
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_an_h264_recording_goes_through_submit_progress_and_results(
    recording: tuple[bytes, list[str]], data_dir: Path
) -> None:
    video, truth = recording
    env = {**JOB_ENV, "CLASSIFIER_WORKERS": "2"}  # results and metrics whichever process answers
    with running_classifier(DEFAULT_MODEL_DIR, env=env) as server:
        async with client_of(server) as client:
            job_id = await submit(client, video, subject="m7", session="night", min_bout_ms="200")
            # Read part-way while the analysis is held: 900 frames take a fraction of a second.
            pid, part_way = await hold_part_way(client, server, job_id)
            resume(pid)
            seen: list[dict[str, Any]] = [part_way]
            while not seen or seen[-1]["status"] not in ("succeeded", "failed"):
                seen.append((await client.get(f"/v1/jobs/{job_id}")).json())
                await asyncio.sleep(0.05)
            done = seen[-1]
            results = {
                name: await client.get(link)
                for name, link in done["links"].items()
                if name != "self"
            }
            metrics = (await client.get("/metrics")).text
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    assert done["status"] == "succeeded", done
    statuses = [document["status"] for document in seen]
    assert statuses[-1] == "succeeded"
    assert set(statuses) <= {"queued", "running", "succeeded"}
    assert "running" in statuses
    # Progress was reported on the way, with an estimate of the time left.
    partial = [d["progress"] for d in seen if 0 < d["progress"]["frames_done"] < 900]
    assert partial, [d["progress"] for d in seen]
    assert all(0 < p["percent"] < 100 and p["seconds_left"] is not None for p in partial)
    assert done["recording"] | {"sha256": None} == {
        "filename": "cage.mp4",
        "frames": 900,
        "fps": 30.0,
        "duration_s": 30.0,
        "width": 64,
        "height": 64,
        "codec": "h264",
        "sha256": None,
    }
    assert {name: r.status_code for name, r in results.items()} == dict.fromkeys(results, 200)
    assert results["results.zip"].headers["content-disposition"] == (
        'attachment; filename="cage.results.zip"'
    )

    frames = _read_csv(results["frames.csv"].text)
    assert [int(row["frame"]) for row in frames] == list(range(900))
    raw_agreement = np.mean(
        [row["label_raw"] == label for row, label in zip(frames, truth, strict=True)]
    )
    assert raw_agreement >= 0.8  # a loose bound for 30 s; make evaluate publishes the real one
    bouts = _read_csv(results["bouts.csv"].text)
    # Bouts cover every frame exactly once, in order, and carry the smoothed labels.
    assert int(bouts[0]["start_frame"]) == 0
    assert int(bouts[-1]["end_frame"]) == 899
    for before, after in itertools.pairwise(bouts):
        assert int(after["start_frame"]) == int(before["end_frame"]) + 1
    for bout in bouts:
        span = frames[int(bout["start_frame"]) : int(bout["end_frame"]) + 1]
        assert {row["label"] for row in span} == {bout["label"]}
        assert int(bout["frames"]) == len(span)
    budget = {row["label"]: row for row in _read_csv(results["time_budget.csv"].text)}
    per_label = Counter(row["label"] for row in frames)
    assert {label: int(row["frames"]) for label, row in budget.items()} == {
        label: per_label.get(label, 0) for label in budget
    }
    assert sum(float(row["total_s"]) for row in budget.values()) == pytest.approx(30.0, abs=1e-3)
    assert results["ethogram.png"].headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(results["ethogram.png"].content))
    assert image.format == "PNG"
    assert image.width >= 600
    summary = results["result.json"].json()
    assert summary["provenance"]["subject"] == "m7"
    assert summary["provenance"]["input_sha256"] == done["recording"]["sha256"]
    assert summary["frames"] == 900
    archive = zipfile.ZipFile(io.BytesIO(results["results.zip"].content))
    assert "job.json" in archive.namelist()
    assert json.loads(archive.read("job.json"))["id"] == job_id
    assert archive.read("bouts.csv").decode() == results["bouts.csv"].text

    assert 'classifier_jobs{status="succeeded"} 1.0' in metrics
    assert 'classifier_jobs_finished_total{status="succeeded"} 1.0' in metrics
    assert "classifier_job_frames_analysed_total 900.0" in metrics
    assert 'classifier_job_duration_seconds_count{status="succeeded"} 1.0' in metrics
    assert "classifier_job_frames_per_second_count 1.0" in metrics
    # One histogram for every job: no label names a job.
    assert 'classifier_job_frames_per_second_bucket{le="+Inf"} 1.0' in metrics
    # The app events of the job, and access records for its routes.
    queued, started, finished = (
        events(output, name) for name in ("job_queued", "job_started", "job_finished")
    )
    assert [e["job_id"] for e in queued + started + finished] == [job_id] * 3
    assert finished[0]["frames"] == 900
    assert finished[0]["seconds"] > 0
    access = [r for r in records(output) if r["tag"] == "classifier.access"]
    routes = {(r["route"], r["status"]) for r in access}
    assert ("/v1/models/{name}/recordings", 202) in routes
    assert ("/v1/jobs/{job_id}", 200) in routes
    assert ("/v1/jobs/{job_id}/{file_name}", 200) in routes
    assert leftover_uploads(data_dir) == []


async def test_clip_requests_and_health_checks_are_served_while_a_long_job_runs(
    long_recording: bytes, data_dir: Path
) -> None:
    clip = files("frames", clip_to_png_bytes(generate_clip("walk", 1)))
    with running_classifier(DEFAULT_MODEL_DIR, env=JOB_ENV) as server:
        async with client_of(server) as client:
            job_id = await submit(client, long_recording)
            pid, before = await hold_part_way(client, server, job_id)
            resume(pid)  # the clip requests compete with a running analysis
            answers = [await client.post(CLASSIFY, files=clip) for _ in range(20)]
            health = [await client.get(path) for path in ("/health/live", "/health/ready")]
            os.kill(pid, signal.SIGSTOP)
            after = (await client.get(f"/v1/jobs/{job_id}")).json()
            resume(pid)
            cancelled = await client.delete(f"/v1/jobs/{job_id}")
            await asyncio.sleep(1.0)  # a few renewals: the holder stops the analysis
            final = (await client.get(f"/v1/jobs/{job_id}")).json()
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json()["label"] for a in answers} == {"walk"}
    assert [h.status_code for h in health] == [200, 200]
    # The ordering that shows nothing waited for the job: it was running before the clip
    # requests and still running, further along, after them.
    assert before["status"] == after["status"] == "running"
    assert before["progress"]["frames_done"] <= after["progress"]["frames_done"] < 21_600
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert final["status"] == "cancelled"
    stopped = events(output, "job_stopped")
    assert [(e["job_id"], e["reason"]) for e in stopped] == [(job_id, "cancelled")]
    assert events(output, "job_finished") == []
    assert leftover_uploads(data_dir) == []


async def test_a_job_stopped_by_a_restart_resumes_and_succeeds(
    medium_recording: bytes, data_dir: Path
) -> None:
    with running_classifier(DEFAULT_MODEL_DIR, env=JOB_ENV) as first:
        async with client_of(first) as client:
            job_id = await submit(client, medium_recording)
            # Held part-way, so that the stop below finds it running: the runner's SIGTERM waits
            # on the stopped analysis for its grace period, then kills it and releases the job.
            await hold_part_way(client, first, job_id)
        first.process.send_signal(signal.SIGTERM)
        first_output = first.output()
    assert first.process.returncode == 0
    assert [e["job_id"] for e in events(first_output, "job_released")] == [job_id]
    assert (data_dir / "uploads" / job_id).is_dir()  # kept for the next start

    with running_classifier(DEFAULT_MODEL_DIR, env=JOB_ENV) as second:
        async with client_of(second) as client:
            between = (await client.get(f"/v1/jobs/{job_id}")).json()
            done = await wait_for_status(client, job_id, ["succeeded"])
        second.process.send_signal(signal.SIGTERM)
        second_output = second.output()

    assert between["status"] in ("queued", "running")
    assert done["recording"]["frames"] == 2700
    # A release gives the start back: the resumed run is still the first attempt.
    assert [e["attempt"] for e in events(second_output, "job_started")] == [1]
    assert leftover_uploads(data_dir) == []


async def test_a_killed_holders_job_is_taken_over_once_its_lease_lapses(
    medium_recording: bytes, data_dir: Path
) -> None:
    with running_classifier(DEFAULT_MODEL_DIR, env=JOB_ENV) as first:
        async with client_of(first) as client:
            job_id = await submit(client, medium_recording)
            pid, held = await hold_part_way(client, first, job_id)
        first.process.kill()  # no shutdown, no release: only the lease can tell
        resume(pid)  # the orphaned analysis runs on, to notice its parent is gone
        first_output = first.output()
    analysis_pid = events(first_output, "job_started")[0]["pid"]

    with running_classifier(DEFAULT_MODEL_DIR, env=JOB_ENV) as second:
        async with client_of(second) as client:
            done = await wait_for_status(client, job_id, ["succeeded"])
        second.process.send_signal(signal.SIGTERM)
        second_output = second.output()

    assert held["status"] == "running"
    assert done["recording"]["frames"] == 2700
    assert [e["attempt"] for e in events(second_output, "job_started")] == [2]
    # The dead holder's analysis process noticed it was orphaned and stopped.
    with pytest.raises(ProcessLookupError):
        os.kill(analysis_pid, 0)
    assert leftover_uploads(data_dir) == []


async def test_two_server_processes_run_one_job_at_a_time_between_them(
    recording: tuple[bytes, list[str]],
) -> None:
    video, _ = recording
    env = {**JOB_ENV, "CLASSIFIER_WORKERS": "2", "CLASSIFIER_JOB_WORKERS": "1"}
    with running_classifier(DEFAULT_MODEL_DIR, env=env) as server:
        async with client_of(server) as client:
            ids = [await submit(client, video) for _ in range(3)]
            jobs = [await wait_for_status(client, job_id, ["succeeded"]) for job_id in ids]
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    spans = sorted((job["started_at"], job["finished_at"]) for job in jobs)
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end, spans  # ISO 8601 UTC strings order as times do
    assert len(events(output, "job_finished")) == 3


def test_a_data_folder_that_cannot_be_written_stops_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = classifier_env(DEFAULT_MODEL_DIR, free_port(), CLASSIFIER_DATA_DIR=str(blocker / "data"))
    result = subprocess.run(
        [sys.executable, "-m", "classifier"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"classifier: cannot use the data folder: the data folder {blocker / 'data'} is not "
        "writable (Not a directory); set CLASSIFIER_DATA_DIR to a folder this user may write"
    ]


async def test_an_upload_abandoned_midway_leaves_nothing_behind(
    model_dir: Path, data_dir: Path
) -> None:
    head = (
        b"POST /v1/models/brightness/recordings HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n"
        b"X-Request-ID: abandoned-upload\r\n\r\n"
        b'--b\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
    )
    with running_classifier(model_dir, env=JOB_ENV) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # More than the server queues before it writes (FLUSH_BYTES), so that a file exists.
        writer.write(head + b"\0" * (FLUSH_BYTES + 500_000))
        await writer.drain()
        for _ in range(500):  # until the server is writing it to disk
            if leftover_uploads(data_dir):
                break
            await asyncio.sleep(0.02)
        assert leftover_uploads(data_dir)
        writer.close()  # gone mid-body
        await writer.wait_closed()
        for _ in range(200):
            if not leftover_uploads(data_dir):
                break
            await asyncio.sleep(0.05)
        async with client_of(server) as client:
            ready = await client.get("/health/ready")
        server.process.send_signal(signal.SIGTERM)
        output = server.output()

    assert leftover_uploads(data_dir) == []
    assert ready.status_code == 200
    access = [r for r in records(output) if r.get("request_id") == "abandoned-upload"]
    assert [(r["status"], r["error"]) for r in access] == [(499, "ClientDisconnectedError")]
    assert events(output, "job_queued") == []
