"""A generated recording analysed by the deployed service: submitted as an image sequence,
followed to success, its results checked against the generator and each other, its job events
found in the shipped logs, and the job deleted."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from behaviour_clips import clip_to_png_bytes, generate_recording
from tests.access_log import APP_TAG, read_logs
from tests.served_model import ServedModel

SEED = 11
FRAMES = 240  # 8 s at 30 fps: ten windows' worth, a few bouts
FPS = 30
JOB_TIMEOUT = 180.0  # seconds: a cold start of the analysis process on a slow machine included
LOG_TIMEOUT = 5.0  # fluentd writes its buffer out about once a second
RESULTS = (
    "frames.csv",
    "bouts.csv",
    "time_budget.csv",
    "transitions.csv",
    "boris.csv",
    "ethogram.png",
    "result.json",
    "results.zip",
)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def _wait_for_end(client: httpx.AsyncClient, location: str) -> list[dict[str, Any]]:
    """Every document seen while polling, the last one finished."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        response = await client.get(location)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in ("succeeded", "failed", "cancelled"):
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"the job did not finish within {JOB_TIMEOUT:g} s: {seen[-1]}")


@pytest.fixture(scope="module")
async def analysed(client: httpx.AsyncClient, model: ServedModel) -> dict[str, Any]:
    """The recording submitted once, its job followed to the end, its results downloaded."""
    pixels, truth = generate_recording(SEED, FRAMES, size=model.height)
    parts = [
        ("frames", (f"cage_{index:05d}.png", data, "image/png"))
        for index, data in enumerate(clip_to_png_bytes(pixels))
    ]
    response = await client.post(
        f"/v1/models/{model.name}/recordings",
        files=parts,
        data={"fps": str(FPS), "subject": "e2e-mouse", "session": "e2e", "min_bout_ms": "100"},
    )
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    seen = await _wait_for_end(client, location)
    done = seen[-1]
    results = {}
    if done["status"] == "succeeded":
        results = {name: await client.get(done["links"][name]) for name in RESULTS}
    return {"submitted": response.json(), "seen": seen, "results": results, "truth": truth}


async def test_the_job_succeeds_and_reports_its_recording(analysed: dict[str, Any]) -> None:
    submitted, done = analysed["submitted"], analysed["seen"][-1]
    assert submitted["status"] in ("queued", "running")
    assert done["status"] == "succeeded", done
    assert done["id"] == submitted["id"]
    assert done["error"] is None
    assert (done["subject"], done["session"]) == ("e2e-mouse", "e2e")
    assert done["recording"]["frames"] == FRAMES
    assert done["recording"]["fps"] == FPS
    assert done["progress"]["frames_done"] == done["progress"]["frames_total"] == FRAMES
    assert set(done["links"]) == {"self", *RESULTS}
    assert {doc["status"] for doc in analysed["seen"]} <= {"queued", "running", "succeeded"}


async def test_the_results_match_the_generator_and_each_other(analysed: dict[str, Any]) -> None:
    results = analysed["results"]
    assert {name: r.status_code for name, r in results.items()} == dict.fromkeys(RESULTS, 200)
    frames = _rows(results["frames.csv"].text)
    assert [int(row["frame"]) for row in frames] == list(range(FRAMES))
    truth = analysed["truth"]
    agreement = (
        sum(row["label_raw"] == label for row, label in zip(frames, truth, strict=True)) / FRAMES
    )
    assert agreement >= 0.7, f"frame agreement with the generator {agreement:.2f}"
    bouts = _rows(results["bouts.csv"].text)
    assert (int(bouts[0]["start_frame"]), int(bouts[-1]["end_frame"])) == (0, FRAMES - 1)
    assert sum(int(bout["frames"]) for bout in bouts) == FRAMES
    budget = _rows(results["time_budget.csv"].text)
    counted = Counter(row["label"] for row in frames)
    assert {row["label"]: int(row["frames"]) for row in budget} == {
        row["label"]: counted.get(row["label"], 0) for row in budget
    }
    assert sum(float(row["total_s"]) for row in budget) == pytest.approx(FRAMES / FPS, abs=1e-3)
    assert results["frames.csv"].headers["content-type"] == "text/csv; charset=utf-8"
    assert results["ethogram.png"].content.startswith(b"\x89PNG\r\n\x1a\n")
    summary = results["result.json"].json()
    assert summary["provenance"]["subject"] == "e2e-mouse"
    assert summary["frames"] == FRAMES
    archive = zipfile.ZipFile(io.BytesIO(results["results.zip"].content))
    assert {"job.json", "provenance.json", "bouts.csv"} <= set(archive.namelist())


async def test_the_job_events_reached_the_logs(
    analysed: dict[str, Any], log_dir: Path | None
) -> None:
    if log_dir is None:
        pytest.skip("E2E_LOG_DIR is not set: no log records to check")
    job_id = analysed["submitted"]["id"]
    wanted = {"job_queued", "job_started", "job_finished"}
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        for record in read_logs(log_dir).tagged(APP_TAG):
            if record.fields.get("job_id") == job_id and record.fields.get("event") in wanted:
                found[record.fields["event"]] = record.fields
        if set(found) == wanted or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert set(found) == wanted, f"job events found for {job_id}: {sorted(found)}"
    assert found["job_finished"]["frames"] == FRAMES
    assert found["job_finished"]["seconds"] > 0


async def test_a_finished_job_is_deleted_with_its_results(
    client: httpx.AsyncClient, analysed: dict[str, Any]
) -> None:
    location = analysed["seen"][-1]["links"]["self"]
    deleted = await client.delete(location)
    assert deleted.status_code == 204
    gone = await client.get(location)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    result = await client.get(f"{location}/frames.csv")
    assert result.status_code == 404
