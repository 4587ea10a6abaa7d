"""A recording through the web page, in a real Chromium against a real server and job runner:
upload with progress, the job's progress to 100%, the ethogram, the tables, a CSV download that
parses, reopening a job, cancelling a running one, and failures told in the API's words."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from behaviour_clips import generate_recording
from tests.browser.test_page import assert_stayed_home, open_page
from tests.recordings.media import encode_video, png_bytes
from tests.support.browser import Browsing
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BOUTS_HEADER = [
    "bout", "label", "start_frame", "end_frame", "frames", "start_s", "end_s", "duration_s",
    "mean_confidence",
]  # fmt: skip
EXPORTS = [
    "frames.csv", "bouts.csv", "time_budget.csv", "transitions.csv", "boris.csv",
    "ethogram.png", "result.json", "results.zip",
]  # fmt: skip
JOB_TIMEOUT_MS = 60_000  # a child process starts per job; generous for a loaded machine


def video(folder: Path, name: str, frames: int, seed: int = 5) -> Path:
    pixels, _ = generate_recording(seed, frames)
    return encode_video(folder / name, pixels, fps=30)


def result_json(server: ServerProcess, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/v1/jobs/{job_id}/result.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def choose_video(page: Page, server: ServerProcess, path: Path) -> None:
    open_page(page, server)
    page.get_by_role("tab", name="Recording").click()
    page.locator("#rec-files").set_input_files(path)


def test_a_video_is_uploaded_analysed_shown_downloaded_and_reopened(
    page: Page, server: ServerProcess, browsing: Browsing, tmp_path: Path
) -> None:
    choose_video(page, server, video(tmp_path, "cage 1.mp4", 240))
    expect(page.locator("#rec-chosen")).to_have_text(re.compile(r"^cage 1\.mp4 \(\d+\.\d kB\)$"))
    page.locator("summary", has_text="Options").click()
    page.get_by_label("Subject", exact=True).fill("m1")
    results_box = page.locator("#rec-result").bounding_box()
    page.get_by_role("button", name="Analyse").click()

    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    expect(page.locator("#upload-text")).to_have_text(re.compile(r"^Done \(\d+\.\d kB\)$"))
    expect(page.locator("#job-text")).to_have_text(
        "Done: 240 frames (100%)", timeout=JOB_TIMEOUT_MS
    )
    expect(page.locator("#job-progress")).to_have_attribute("value", "100")
    job_id = page.evaluate("location.hash").removeprefix("#job=")
    expected = result_json(server, job_id)

    image = page.locator("#ethogram")
    expect(image).to_be_visible()
    assert (image.get_attribute("src") or "").startswith("blob:" + server.url)
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0
    bouts = expected["bouts"]
    rows = page.locator("#bouts-body tr:not(.filler)")
    expect(rows).to_have_count(min(len(bouts), 10))
    assert rows.nth(0).locator("td").nth(1).inner_text() == bouts[0]["label"]
    expect(page.locator("#bouts-count")).to_contain_text(f"{len(bouts)} bout")
    budget = page.locator("#budget-body tr")
    expect(budget).to_have_count(len(expected["time_budget"]))
    assert budget.locator("th").all_inner_texts() == [r["label"] for r in expected["time_budget"]]
    expect(page.locator("#downloads button")).to_have_text(EXPORTS)
    # The results filled space kept for them: the card did not change size.
    assert page.locator("#rec-result").bounding_box() == results_box

    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download bouts.csv").click()
    download = downloading.value
    assert download.suggested_filename == "cage_1.bouts.csv"
    table = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert table[0] == BOUTS_HEADER
    assert [row[1] for row in table[1:]] == [bout["label"] for bout in bouts]

    listed = page.locator(f"#jobs-body tr[data-job='{job_id}']")
    expect(listed).to_contain_text("cage 1.mp4, subject m1")
    expect(listed).to_contain_text("succeeded")
    # Its address reopens it after a reload, and so does its row in the list.
    page.reload()
    expect(page.locator("#job-name")).to_have_text(f"cage 1.mp4, subject m1 (job {job_id[:8]})")
    expect(page.locator("#ethogram")).to_be_visible()
    listed.get_by_role("button", name="Open").click()
    expect(page.locator("#job-text")).to_have_text("Done: 240 frames (100%)")
    expect(page.locator("#bouts-body tr:not(.filler)")).to_have_count(min(len(bouts), 10))
    assert_stayed_home(page, browsing)


def test_a_running_job_is_cancelled_from_the_page(
    page: Page, server: ServerProcess, browsing: Browsing, tmp_path: Path
) -> None:
    choose_video(page, server, video(tmp_path, "long.mp4", 2000, seed=6))
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#job-text")).to_have_text(re.compile(r"^(Queued|Running|\d+ of 2000)"))
    job_id = page.evaluate("location.hash").removeprefix("#job=")

    page.get_by_role("button", name="Cancel job").click()

    expect(page.locator("#job-text")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["status"] == "cancelled"
    expect(page.locator(f"#jobs-body tr[data-job='{job_id}']")).to_contain_text("cancelled")
    assert_stayed_home(page, browsing)


def test_a_file_that_is_no_video_is_refused_in_the_api_words(
    page: Page, server: ServerProcess, browsing: Browsing, tmp_path: Path
) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are field notes, not a video\n" * 20)
    with fake.open("rb") as file:
        api = httpx.post(
            f"{server.url}/v1/models/rodent-behaviour/recordings",
            files={"video": ("notes.mp4", file, "video/mp4")},
        )
    assert api.status_code == 415
    detail = api.json()["detail"]
    choose_video(page, server, fake)

    page.get_by_role("button", name="Analyse").click()

    error = page.locator("#rec-error p").first
    expect(error).to_have_text(
        detail[0].upper() + detail[1:] + ("" if detail[-1] in ".!?" else ".")
    )
    expect(page.locator("#upload-text")).to_have_text("Not uploaded")
    assert_stayed_home(page, browsing)


def test_a_failed_job_says_why(
    page: Page, server: ServerProcess, browsing: Browsing, tmp_path: Path
) -> None:
    choose_video(page, server, video(tmp_path, "short.mp4", 12))
    page.get_by_role("button", name="Analyse").click()

    expect(page.locator("#job-text")).to_have_text("Failed", timeout=JOB_TIMEOUT_MS)
    job_id = page.evaluate("location.hash").removeprefix("#job=")
    reason = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["error"]["message"]
    assert "12 frame" in reason
    expect(page.locator("#rec-error p").first).to_have_text(
        f"The job failed: {reason[0].upper()}{reason[1:]}" + ("" if reason[-1] in ".!?" else ".")
    )
    expect(page.locator("#ethogram")).to_be_hidden()
    assert_stayed_home(page, browsing)


def test_an_image_sequence_needs_its_frame_rate_and_is_analysed(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    pixels, _ = generate_recording(7, 60)
    files: list[FilePayload] = [
        {"name": f"img_{i}.png", "mimeType": "image/png", "buffer": png_bytes(frame)}
        for i, frame in enumerate(pixels)
    ]
    open_page(page, server)
    page.get_by_role("tab", name="Recording").click()
    page.get_by_label("An image sequence").check()
    # Chosen in reverse: they go in file-name order, img_2 before img_10.
    page.locator("#rec-files").set_input_files(list(reversed(files)))
    expect(page.locator("#rec-chosen")).to_have_text(
        re.compile(r"^60 images chosen \(img_0\.png \u2026 img_59\.png, \d+\.\d kB\)\.$")
    )

    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#rec-error p")).to_have_text(
        "Enter the image sequence's frames per second."
    )
    expect(page.get_by_label("Frames per second")).to_be_focused()
    page.get_by_label("Frames per second").fill("25")
    page.get_by_role("button", name="Analyse").click()

    expect(page.locator("#job-text")).to_have_text("Done: 60 frames (100%)", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#rec-summary")).to_contain_text("60 frames, 2 s at 25.00 fps")
    expect(page.locator("#ethogram")).to_be_visible()
    assert_stayed_home(page, browsing)
