"""Submitting recordings and following their jobs over HTTP (in-process app, real runner): every
bad input answered with its exact status and problem detail, and never a 5xx."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from classifier.core.config import Settings
from classifier.jobs.records import ModelSummary, NewJob, RecordingSummary
from classifier.main import create_app
from tests.support.app_client import app_client, lifespan_client
from tests.support.recording_files import (
    faststart_mp4,
    frame_parts,
    leftover_uploads,
    noise_frames,
    png_sequence,
    ppm_frame,
    uniform_frames,
    unknown_codec_avi,
    video_bytes,
    video_part,
    wait_for_status,
)

SUBMIT = "/v1/models/brightness/recordings"
PROBLEMS = "https://github.com/image-sequence-classifier/problems/"


async def _no_server_errors(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.url}: {response.status_code}"


@pytest.fixture
def fast_jobs() -> dict[str, Any]:
    """Settings that make jobs start and report at once."""
    return {"job_poll_seconds": 0.1, "job_lease_seconds": 5}


@pytest.fixture
async def client(model_dir: Path, fast_jobs: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(model_dir, **fast_jobs) as http:
        http.event_hooks["response"].append(_no_server_errors)
        yield http


def problem(response: httpx.Response, status: int, slug: str) -> str:
    """The problem's detail, once its status, type and content type are the expected ones."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["type"]) == (status, PROBLEMS + slug)
    assert body["request_id"] == response.headers["x-request-id"]
    detail: str = body["detail"]
    return detail


# --- the happy path ----------------------------------------------------------------------------


async def test_an_image_sequence_becomes_a_job_that_succeeds_with_its_results(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    # 30 dark frames then 30 bright ones. Windows across the change average to dim and mid,
    # in bouts of a few frames that min_bout_ms (1 s: 10 frames) folds into their neighbours.
    frames = png_sequence([0] * 30 + [255] * 30)

    response = await client.post(
        SUBMIT,
        files=frame_parts(frames),
        data={
            "fps": "10",
            "subject": "m1",
            "session": "day1",
            "metadata": json.dumps({"cage": 4, "notes": "baseline"}),
            "bin_s": "3",
            "min_bout_ms": "1000",
        },
    )

    assert response.status_code == 202, response.text
    submitted = response.json()
    job_id = submitted["id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", job_id)
    assert submitted["status"] in ("queued", "running")
    assert (submitted["subject"], submitted["session"]) == ("m1", "day1")
    assert submitted["metadata"] == {"cage": 4, "notes": "baseline"}
    assert submitted["parameters"] == {
        "stride": 1,
        "min_bout_ms": 1000.0,
        "bin_s": 3.0,
        "fps": 10.0,
    }
    assert submitted["recording"]["codec"] == "image-sequence"
    assert submitted["recording"]["duration_s"] == 6.0
    assert submitted["model"]["name"] == "brightness"
    assert submitted["links"] == {"self": f"/v1/jobs/{job_id}"}

    done = await wait_for_status(client, job_id, ["succeeded"])

    assert done["progress"] == {
        "frames_done": 60,
        "frames_total": 60,
        "percent": 100.0,
        "seconds_left": 0.0,
    }
    assert done["recording"]["frames"] == 60
    assert done["error"] is None
    assert done["started_at"] is not None
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert set(done["links"]) == {
        "self",
        "frames.csv",
        "bouts.csv",
        "time_budget.csv",
        "transitions.csv",
        "boris.csv",
        "ethogram.png",
        "result.json",
        "results.zip",
        "time_budget_bins.csv",
    }
    bouts = await client.get(done["links"]["bouts.csv"])
    assert bouts.status_code == 200
    assert bouts.headers["content-type"] == "text/csv; charset=utf-8"
    assert bouts.headers["content-disposition"] == 'attachment; filename="frames.bouts.csv"'
    rows = [line.split(",") for line in bouts.text.strip().splitlines()]
    assert rows[0][:5] == ["bout", "label", "start_frame", "end_frame", "frames"]
    assert [(row[1], row[2]) for row in rows[1:]] == [("dark", "0"), ("bright", rows[2][2])]
    assert 24 <= int(rows[2][2]) <= 36
    assert rows[2][3] == "59"
    png = await client.get(done["links"]["ethogram.png"])
    assert (png.headers["content-type"], png.content[:8]) == ("image/png", b"\x89PNG\r\n\x1a\n")
    summary = await client.get(done["links"]["result.json"])
    assert summary.headers["content-type"] == "application/json"
    assert summary.json()["provenance"]["subject"] == "m1"
    archive = await client.get(done["links"]["results.zip"])
    assert archive.headers["content-type"] == "application/zip"
    # The upload is kept only until the job finishes.
    assert leftover_uploads(data_dir) == []


async def test_the_job_list_is_newest_first_paged_and_filtered(client: httpx.AsyncClient) -> None:
    frames = frame_parts(png_sequence([128] * 24))
    ids = []
    for subject in ("m1", "m2", "m1"):
        response = await client.post(SUBMIT, files=frames, data={"fps": "30", "subject": subject})
        assert response.status_code == 202
        ids.append(response.json()["id"])

    first = (await client.get("/v1/jobs", params={"limit": 2})).json()
    assert [job["id"] for job in first["jobs"]] == [ids[2], ids[1]]
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert first["next"] == "/v1/jobs?limit=2&offset=2"
    second = (await client.get(first["next"])).json()
    assert ([job["id"] for job in second["jobs"]], second["next"]) == ([ids[0]], None)
    mine = (await client.get("/v1/jobs", params={"subject": "m1"})).json()
    assert ([job["id"] for job in mine["jobs"]], mine["total"]) == ([ids[2], ids[0]], 2)
    for job_id in ids:
        await wait_for_status(client, job_id, ["succeeded"])
    done = (await client.get("/v1/jobs", params={"status": "succeeded", "limit": 1})).json()
    assert (done["total"], done["next"]) == (3, "/v1/jobs?limit=1&offset=1&status=succeeded")
    bad = await client.get("/v1/jobs", params={"status": "sleeping"})
    assert "status" in problem(bad, 422, "invalid-parameters")


async def test_a_video_job_runs_from_the_decoded_frames(client: httpx.AsyncClient) -> None:
    video = video_bytes(uniform_frames([0] * 24 + [255] * 36))

    response = await client.post(SUBMIT, files=video_part(video))

    assert response.status_code == 202, response.text
    submitted = response.json()
    assert submitted["recording"]["codec"] == "h264"
    assert (submitted["recording"]["width"], submitted["recording"]["fps"]) == (64, 30.0)
    assert submitted["parameters"] == {"stride": 1, "min_bout_ms": None, "bin_s": None}
    done = await wait_for_status(client, submitted["id"], ["succeeded"])
    assert done["recording"]["frames"] == 60
    assert done["recording"]["filename"] == "cage1.mp4"
    frames = await client.get(f"/v1/jobs/{done['id']}/frames.csv")
    raw = [row.split(",")[3] for row in frames.text.splitlines()[1:]]
    # Only windows wholly inside one half are pure; the first and last frames are.
    assert (len(raw), raw[0], raw[-1]) == (60, "dark", "bright")


# --- bad input: refused at submit --------------------------------------------------------------


async def test_an_unknown_model_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/models/nope/recordings", files=frame_parts(png_sequence([1] * 24)), data={"fps": "5"}
    )
    assert problem(response, 404, "model-not-found") == (
        "no model named 'nope' is served (served: brightness)"
    )


async def test_a_body_that_is_not_multipart_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        SUBMIT, content=b"{}", headers={"content-type": "application/json"}
    )
    assert problem(response, 415, "unsupported-media-type") == (
        "expected a multipart/form-data body, got content type 'application/json'"
    )


async def test_a_file_that_is_not_a_video_is_a_415_whatever_its_content_type(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    response = await client.post(SUBMIT, files=video_part(b"hello, not a video\n" * 50))
    assert problem(response, 415, "not-a-video") == (
        "cage1.mp4 is not a video FFmpeg can open (MP4, MOV, AVI, MKV, WebM, ...)"
    )
    image = await client.post(SUBMIT, files=video_part(png_sequence([5])[0], "still.png"))
    assert problem(image, 415, "not-a-video").startswith("still.png is a still image")
    assert leftover_uploads(data_dir) == []


async def test_a_video_in_a_codec_nobody_decodes_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBMIT, files=video_part(unknown_codec_avi(), "odd.avi"))
    assert problem(response, 415, "unsupported-codec") == (
        "odd.avi has a video stream in a codec FFmpeg cannot decode (unknown)"
    )


async def test_a_truncated_mp4_without_its_index_is_a_422(client: httpx.AsyncClient) -> None:
    video = video_bytes(uniform_frames([100] * 48))
    response = await client.post(SUBMIT, files=video_part(video[: len(video) // 2], "cut.mp4"))
    assert problem(response, 422, "corrupt-recording").startswith(
        "cut.mp4 looks like a video container but FFmpeg cannot open it (truncated or damaged"
    )


async def test_an_image_sequence_without_fps_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBMIT, files=frame_parts(png_sequence([9] * 30)))
    assert problem(response, 422, "invalid-recording-submission") == (
        "an image sequence needs fps: the frame rate it was recorded at"
    )


async def test_fewer_frames_than_one_window_is_a_422_naming_both(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        SUBMIT, files=frame_parts(png_sequence([9] * 10)), data={"fps": "30"}
    )
    assert problem(response, 422, "too-few-frames") == (
        "the recording has 10 frame(s), fewer than one window of the model's 24 frames"
    )


async def test_frames_in_a_format_the_service_does_not_take_are_a_415(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        SUBMIT, files=frame_parts([ppm_frame()] * 24, "ppm"), data={"fps": "30"}
    )
    assert problem(response, 415, "unsupported-codec") == (
        "frame 0 (img_00000.ppm) is PPM; supported formats are PNG, JPEG, BMP, TIFF, WEBP, GIF"
    )


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"stride": "25"},
            "stride 25 is outside 1..24: it must be at least 1 and at most the model's "
            "window of 24 frames",
        ),
        (
            {"stride": "0"},
            "stride 0 is outside 1..24: it must be at least 1 and at most the "
            "model's window of 24 frames",
        ),
        ({"stride": "two"}, "stride must be a whole number of frames, got 'two'"),
        ({"fps": "-3"}, "fps must be a positive number, got '-3'"),
        ({"fps": "nan"}, "fps must be a positive number, got 'nan'"),
        (
            {"metadata": "{cage: 3"},
            "metadata is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        ({"metadata": "[1, 2]"}, "metadata must be a JSON object, got list"),
        (
            {"min_bout_ms": '{"sleep": 200}'},
            "min_bout_ms names labels the model does not have: sleep (labels: dark, dim, mid, "
            "bright)",
        ),
        ({"min_bout_ms": "-5"}, "min_bout_ms must be 0 or more, got '-5'"),
        ({"bin_s": "0"}, "bin_s must be a positive number, got '0'"),
        (
            {"fsp": "30"},
            "unknown field 'fsp'; a submission takes 'video' or 'frames' files and the fields "
            "path, fps, stride, min_bout_ms, bin_s, subject, session, metadata",
        ),
    ],
)
async def test_a_bad_field_is_a_422_naming_it(
    client: httpx.AsyncClient, data_dir: Path, fields: dict[str, str], detail: str
) -> None:
    response = await client.post(
        SUBMIT, files=frame_parts(png_sequence([9] * 24)), data={"fps": "30", **fields}
    )
    assert problem(response, 422, "invalid-recording-submission") == detail
    assert leftover_uploads(data_dir) == []


async def test_a_bad_field_sent_first_stops_the_upload_before_the_recording(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        boundary = b"--xyz"
        yield boundary + b'\r\nContent-Disposition: form-data; name="stride"\r\n\r\n99\r\n'
        yield (
            boundary + b'\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
        )
        for _ in range(100):
            sent += 1
            yield b"\0" * 65536
        yield b"\r\n" + boundary + b"--\r\n"

    response = await client.post(
        SUBMIT, content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert problem(response, 422, "invalid-recording-submission").startswith("stride 99 is")
    assert sent <= 1  # refused as the field arrived, not after 6 MB more


async def test_no_recording_at_all_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBMIT, files=[("subject", (None, "m1"))])
    assert problem(response, 400, "malformed-upload") == (
        "the submission has no recording: send one 'video' file, 'frames' files (an image "
        "sequence, with fps), or a path field"
    )


async def test_a_video_and_frames_together_are_a_422(client: httpx.AsyncClient) -> None:
    files = video_part(video_bytes(uniform_frames([1] * 24))) + frame_parts(png_sequence([1] * 24))
    response = await client.post(SUBMIT, files=files, data={"fps": "30"})
    assert problem(response, 422, "invalid-recording-submission") == (
        "give either one 'video' part or 'frames' parts, not both"
    )


async def test_a_video_shorter_than_one_window_fails_its_job_naming_both(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(SUBMIT, files=video_part(video_bytes(uniform_frames([5] * 10))))
    assert response.status_code == 202  # its frames are counted by decoding it, in the job

    failed = await wait_for_status(client, response.json()["id"], ["failed"])

    assert failed["error"] == {
        "type": "too_few_frames",
        "message": "the recording has 10 frame(s), fewer than one window of the model's 24 frames",
    }


async def test_a_video_cut_short_fails_its_job_naming_the_frame_where_decoding_stopped(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    video = faststart_mp4(noise_frames(120))
    response = await client.post(SUBMIT, files=video_part(video[: len(video) // 2], "cut.mp4"))
    assert response.status_code == 202

    failed = await wait_for_status(client, response.json()["id"], ["failed"])

    assert failed["error"]["type"] == "corrupt_recording"
    assert re.fullmatch(
        r"cut\.mp4 is truncated: decoding stopped at frame \d+ \(after [\d.]+ s\), but the "
        r"container lists 120 frames",
        failed["error"]["message"],
    )
    assert failed["links"] == {"self": f"/v1/jobs/{failed['id']}"}
    assert leftover_uploads(data_dir) == []


# --- bad input: limits -------------------------------------------------------------------------


async def test_an_upload_over_the_size_limit_is_a_413_from_its_header_or_while_streaming(
    model_dir: Path, fast_jobs: dict[str, Any], data_dir: Path
) -> None:
    async with app_client(model_dir, max_recording_bytes=200_000, **fast_jobs) as client:
        video = [("video", ("big.mp4", b"\0" * 300_000, "video/mp4"))]
        declared = await client.post(SUBMIT, files=video)
        assert problem(declared, 413, "content-too-large").endswith(
            "above the limit of 200000 bytes (limit max_recording_bytes)"
        )

        async def chunked() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
            for _ in range(10):
                yield b"\0" * 65536

        streamed = await client.post(
            SUBMIT, content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert problem(streamed, 413, "content-too-large") == (
            "the request body is larger than 200000 bytes (limit max_recording_bytes)"
        )
    assert leftover_uploads(data_dir) == []


async def test_an_image_sequence_has_limits_of_its_own_on_frames_and_their_bytes(
    model_dir: Path, fast_jobs: dict[str, Any], data_dir: Path
) -> None:
    settings = {"max_sequence_frames": 30, "max_sequence_frame_bytes": 5000, **fast_jobs}
    async with app_client(model_dir, **settings) as client:
        too_many = await client.post(
            SUBMIT, files=frame_parts(png_sequence([3] * 31)), data={"fps": "30"}
        )
        assert problem(too_many, 413, "content-too-large") == (
            "the image sequence has more than 30 frames (limit max_sequence_frames)"
        )
        frames = png_sequence([3] * 24)
        frames[5] = b"\x89PNG" + b"\0" * 6000
        too_big = await client.post(SUBMIT, files=frame_parts(frames), data={"fps": "30"})
        assert problem(too_big, 413, "content-too-large") == (
            "frame 5 (img_00005.png) is larger than 5000 bytes (limit max_sequence_frame_bytes)"
        )
        # 300 frames pass where a clip request's limit of 256 parts would stop them.
    async with app_client(model_dir, **fast_jobs) as client:
        many = await client.post(
            SUBMIT, files=frame_parts(png_sequence([3] * 300)), data={"fps": "30"}
        )
        assert many.status_code == 202, many.text
        await wait_for_status(client, many.json()["id"], ["succeeded"])
    assert leftover_uploads(data_dir) == []


async def test_a_full_data_folder_is_a_507_before_the_upload_is_read(
    model_dir: Path, fast_jobs: dict[str, Any], data_dir: Path
) -> None:
    async with app_client(model_dir, min_free_bytes=2**62, **fast_jobs) as client:
        response = await client.post(
            SUBMIT, files=frame_parts(png_sequence([3] * 24)), data={"fps": "30"}
        )
    detail = problem(response, 507, "insufficient-storage")
    assert re.fullmatch(
        r"the data folder has \d+ bytes free; this upload of \d+ bytes would leave less than "
        r"the 4611686018427387904 bytes it must keep \(limit min_free_bytes\)",
        detail,
    )
    assert leftover_uploads(data_dir) == []


async def test_an_upload_that_stalls_is_a_408_and_leaves_nothing(
    model_dir: Path, fast_jobs: dict[str, Any], data_dir: Path
) -> None:
    async def stalling() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
        yield b"\0" * 1000
        await asyncio.sleep(1.0)
        yield b"\0" * 1000

    async with app_client(model_dir, upload_idle_timeout=0.2, **fast_jobs) as client:
        response = await client.post(
            SUBMIT, content=stalling(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
    assert problem(response, 408, "request-timeout") == (
        "the request body stalled: nothing arrived for 0.2 s"
    )
    assert leftover_uploads(data_dir) == []


async def test_uploads_beyond_the_concurrent_limit_get_a_503_with_retry_after(
    model_dir: Path, fast_jobs: dict[str, Any]
) -> None:
    release = asyncio.Event()

    async def slow_upload() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="fps"\r\n\r\n30\r\n'
        await release.wait()
        yield b"--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    async with app_client(model_dir, max_concurrent_uploads=1, **fast_jobs) as client:
        first = asyncio.create_task(client.post(SUBMIT, content=slow_upload(), headers=headers))
        await asyncio.sleep(0.2)  # the first upload is being received
        second = await client.post(SUBMIT, files=frame_parts(png_sequence([1] * 24)))
        # A clip request is not an upload: it is admitted meanwhile.
        health = await client.get("/health/ready")
        release.set()
        finished = await first
    assert problem(second, 503, "too-many-uploads") == (
        "1 recording uploads are being received already (limit max_concurrent_uploads); "
        "retry shortly"
    )
    assert second.headers["retry-after"] == "5"
    assert health.status_code == 200
    assert problem(finished, 400, "malformed-upload").startswith("the submission has no recording")


# --- submitting by path ------------------------------------------------------------------------


@pytest.fixture
def import_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "nas"
    (folder / "cage1").mkdir(parents=True)
    for index, data in enumerate(png_sequence([0] * 48 + [255] * 48)):
        (folder / "cage1" / f"frame_{index}.png").write_bytes(data)
    (folder / "day1.mp4").write_bytes(video_bytes(uniform_frames([255] * 30)))
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(video_bytes(uniform_frames([0] * 30)))
    (folder / "link.mp4").symlink_to(outside)
    return folder


async def test_submitting_by_path_is_off_unless_an_import_folder_is_set(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(SUBMIT, files=[("path", (None, "day1.mp4"))])
    assert problem(response, 403, "path-not-importable") == (
        "submitting by path is off: the service has no import folder (CLASSIFIER_IMPORT_DIR)"
    )


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("../secret.mp4", "path '../secret.mp4' resolves outside the import folder"),
        ("cage1/../../secret.mp4",
         "path 'cage1/../../secret.mp4' resolves outside the import folder"),
        ("link.mp4", "path 'link.mp4' resolves outside the import folder"),
        ("/etc/passwd", "path '/etc/passwd' is absolute; give it relative to the import folder"),
    ],
)  # fmt: skip
async def test_a_path_outside_the_import_folder_is_a_403(
    model_dir: Path, fast_jobs: dict[str, Any], import_dir: Path, path: str, detail: str
) -> None:
    async with app_client(model_dir, import_dir=import_dir, **fast_jobs) as client:
        response = await client.post(SUBMIT, files=[("path", (None, path))])
    assert problem(response, 403, "path-not-importable") == detail


async def test_recordings_under_the_import_folder_are_analysed_in_place(
    model_dir: Path, fast_jobs: dict[str, Any], import_dir: Path, data_dir: Path
) -> None:
    async with app_client(model_dir, import_dir=import_dir, **fast_jobs) as client:
        missing = await client.post(SUBMIT, files=[("path", (None, "nothing.mp4"))])
        assert problem(missing, 422, "invalid-recording-submission") == (
            "path 'nothing.mp4': no such file or folder in the import folder"
        )
        video = await client.post(SUBMIT, files=[("path", (None, "day1.mp4"))])
        folder = await client.post(
            SUBMIT,
            files=[
                ("path", (None, "cage1")),
                ("fps", (None, "10")),
                ("min_bout_ms", (None, "1000")),
            ],
        )
        assert (video.status_code, folder.status_code) == (202, 202)
        video_job = await wait_for_status(client, video.json()["id"], ["succeeded"])
        folder_job = await wait_for_status(client, folder.json()["id"], ["succeeded"])
        bouts = await client.get(f"/v1/jobs/{folder_job['id']}/bouts.csv")
    assert video_job["recording"]["frames"] == 30
    assert len(video_job["recording"]["sha256"]) == 64  # hashed by the job, not at submit
    assert folder_job["recording"]["frames"] == 96
    # frame_2.png sorts before frame_10.png: the dark half comes first.
    assert [line.split(",")[1] for line in bouts.text.splitlines()[1:]] == ["dark", "bright"]
    assert (import_dir / "day1.mp4").is_file()  # imported files are never removed
    assert leftover_uploads(data_dir) == []


# --- jobs: unknown, cancelled, failed, deleted -------------------------------------------------


async def test_an_unknown_job_and_an_unknown_result_are_404s(client: httpx.AsyncClient) -> None:
    missing = "A" * 32
    assert problem(await client.get(f"/v1/jobs/{missing}"), 404, "job-not-found") == (
        f"no job {missing!r} (finished jobs expire after a while)"
    )
    assert problem(await client.delete(f"/v1/jobs/{missing}"), 404, "job-not-found")
    assert problem(await client.get(f"/v1/jobs/{missing}/bouts.csv"), 404, "job-not-found")
    assert problem(
        await client.get(f"/v1/jobs/{missing}/passwords.txt"), 404, "result-not-found"
    ).startswith("no result file 'passwords.txt'; a job's results are frames.csv, bouts.csv")


async def test_a_failed_job_says_why_and_its_results_are_a_409(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    frames = png_sequence([50] * 24) + png_sequence([50], size=(32, 32))
    response = await client.post(SUBMIT, files=frame_parts(frames), data={"fps": "30"})
    assert response.status_code == 202

    failed = await wait_for_status(client, response.json()["id"], ["failed"])

    assert failed["error"] == {
        "type": "mixed_frame_sizes",
        "message": "frame 24 (img_00024.png) is 32x32, but the sequence began at 64x64 "
        "(frame 0, img_00000.png)",
    }
    assert failed["links"] == {"self": f"/v1/jobs/{failed['id']}"}
    result = await client.get(f"/v1/jobs/{failed['id']}/frames.csv")
    assert problem(result, 409, "job-state-conflict") == (
        f"job {failed['id']} is failed; its results exist once it has succeeded"
    )
    assert leftover_uploads(data_dir) == []
    deleted = await client.delete(f"/v1/jobs/{failed['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/jobs/{failed['id']}")).status_code == 404


def _hold_the_only_slot(app: FastAPI) -> None:
    """Another process's job holds the service's one job slot for an hour."""
    store = app.state.service.jobs
    store.create(
        NewJob(
            id="elsewhere",
            model=ModelSummary("another-model", "1", "0" * 64),
            recording=RecordingSummary("x.mp4"),
            input_kind="video",
            input_path="/nowhere/x.mp4",
            upload_dir=None,
            parameters={},
        )
    )
    held = store.claim("another-process", lease_s=3600, max_running=1, models=["another-model"])
    assert held is not None


async def test_a_queued_job_is_cancelled_once_and_a_second_cancel_is_a_409(
    model_dir: Path, fast_jobs: dict[str, Any], data_dir: Path
) -> None:
    app = create_app(
        Settings(model_dir=model_dir, fluentd_host=None, access_log_stdout=False, **fast_jobs)
    )
    async with lifespan_client(app) as client:
        _hold_the_only_slot(app)
        submit = await client.post(
            SUBMIT, files=frame_parts(png_sequence([1] * 24)), data={"fps": "30"}
        )
        job_id = submit.json()["id"]
        await asyncio.sleep(0.3)  # three polls: the job stays queued behind the held slot
        queued = await client.get(f"/v1/jobs/{job_id}")
        cancelled = await client.delete(f"/v1/jobs/{job_id}")
        again = await client.delete(f"/v1/jobs/{job_id}")
        result = await client.get(f"/v1/jobs/{job_id}/result.json")
    assert queued.json()["status"] == "queued"
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert problem(again, 409, "job-state-conflict") == (
        f"job {job_id} is already cancelled; its files are gone and its record expires 72 "
        "hours after it ended"
    )
    assert problem(result, 409, "job-state-conflict") == (
        f"job {job_id} is cancelled; its results exist once it has succeeded"
    )
    assert leftover_uploads(data_dir) == []
