"""Jobs belong to the key that submitted them, over HTTP against the real app and runner: every
jobs and recordings route with no key, a wrong key, a revoked key, another owner's key (404,
exactly as an unknown id) and the right key; an admin sees all; the list is filtered; the
running-jobs and bytes-per-day limits hit and recovered; keys off costs no store lookup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from classifier.core.config import Settings
from classifier.jobs.records import ModelSummary, NewJob, RecordingSummary
from classifier.main import create_app
from tests.support.api_keys import IssuedKeys, ManualClock, next_reload, use_clock
from tests.support.app_client import lifespan_client
from tests.support.frames import files, sequence
from tests.support.recording_files import (
    frame_parts,
    leftover_uploads,
    png_sequence,
    wait_for_status,
)

SUBMIT = "/v1/models/brightness/recordings"
PROBLEMS = "https://github.com/image-sequence-classifier/problems/"
FAST_JOBS: dict[str, Any] = {"job_poll_seconds": 0.1, "job_lease_seconds": 5}
#: 22:00 UTC: two hours (7200 s) before the next UTC day.
EVENING = datetime(2026, 12, 1, 22, 0, tzinfo=UTC).timestamp()
NEXT_MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC).timestamp()


def recording() -> dict[str, Any]:
    """A 24-frame image sequence: one window, a job of a moment."""
    return {"files": frame_parts(png_sequence([200] * 24)), "data": {"fps": "30"}}


def app_with_keys(model_dir: Path, issued: IssuedKeys) -> FastAPI:
    return create_app(
        Settings(
            model_dir=model_dir,
            api_keys_file=issued.path,
            fluentd_host=None,
            access_log_stdout=False,
            **FAST_JOBS,
        )
    )


@asynccontextmanager
async def callers(app: FastAPI, issued: IssuedKeys) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A client per key name (each sending its key), plus ``none`` and ``wrong``, of one
    started app."""
    wrong = issued.keys["lab"][:-1] + ("A" if issued.keys["lab"][-1] != "A" else "B")
    headers = {name: issued.bearer(name) for name in issued.keys}
    headers["none"] = {}
    headers["wrong"] = {"Authorization": f"Bearer {wrong}"}
    async with lifespan_client(app):
        clients = {
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://testserver",
                headers=sent,
            )
            for name, sent in headers.items()
        }
        try:
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()


def problem(response: httpx.Response, status: int, slug: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["type"]) == (status, PROBLEMS + slug)
    detail: str = body["detail"]
    return detail


def without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id")
    return body


def hold_the_only_slot(app: FastAPI) -> int:
    """Another process's job holds the service's one job slot: jobs submitted now stay queued.
    Returns the lease's token, to give the slot back."""
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
    return int(held.token)


def job_routes(job_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", "/v1/jobs"),
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/frames.csv"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]


async def send(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    if method == "POST":
        return await client.post(path, **recording())
    return await client.request(method, path)


# --- who sees what -----------------------------------------------------------------------------


async def test_a_job_is_its_keys_another_key_gets_the_unknown_ids_404_an_admin_sees_all(
    model_dir: Path, issued: IssuedKeys
) -> None:
    issued.add("other")
    app = app_with_keys(model_dir, issued)
    async with callers(app, issued) as by:
        lab, other, boss = by["lab"], by["other"], by["boss"]
        submitted = await lab.post(SUBMIT, **recording())
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        theirs = await other.post(SUBMIT, **recording())
        assert theirs.status_code == 202, theirs.text
        their_id = theirs.json()["id"]
        await wait_for_status(lab, job_id, ["succeeded"])
        await wait_for_status(other, their_id, ["succeeded"])
        assert app.state.service.jobs.get(job_id).owner == "lab"

        # Another key: each of the job's routes answers what an unknown id answers.
        unknown = "X" * 32
        for method, path in job_routes(job_id)[1:]:
            refused = await other.request(method, path)
            as_unknown = await other.request(method, path.replace(job_id, unknown))
            assert problem(refused, 404, "job-not-found") == (
                f"no job {job_id!r} (finished jobs expire after a while)"
            ), path
            # Byte for byte the unknown id's problem, but for the id (and the request id).
            assert without_request_id(refused) == json.loads(
                json.dumps(without_request_id(as_unknown)).replace(unknown, job_id)
            )
            assert refused.headers.keys() == as_unknown.headers.keys()
        # The refused DELETE deleted nothing; the owner still has everything.
        mine = await lab.get(f"/v1/jobs/{job_id}")
        csv = await lab.get(f"/v1/jobs/{job_id}/frames.csv")
        assert (mine.status_code, mine.json()["status"]) == (200, "succeeded")
        assert csv.status_code == 200
        assert csv.text.startswith("frame,time_s,label,label_raw,confidence,")

        # The list: a key's own jobs; an admin's: every job.
        listed = {
            name: (await by[name].get("/v1/jobs")).json() for name in ("lab", "other", "boss")
        }
        assert [job["id"] for job in listed["lab"]["jobs"]] == [job_id]
        assert listed["lab"]["total"] == 1
        assert [job["id"] for job in listed["other"]["jobs"]] == [their_id]
        assert sorted(job["id"] for job in listed["boss"]["jobs"]) == sorted([job_id, their_id])
        assert listed["boss"]["total"] == 2

        # An admin key reads and deletes another key's job.
        seen = await boss.get(f"/v1/jobs/{their_id}")
        result = await boss.get(f"/v1/jobs/{their_id}/result.json")
        deleted = await boss.delete(f"/v1/jobs/{their_id}")
        gone = await other.get(f"/v1/jobs/{their_id}")
        assert (seen.status_code, seen.json()["id"]) == (200, their_id)
        assert result.status_code == 200
        assert deleted.status_code == 204
        assert gone.status_code == 404
        own_delete = await lab.delete(f"/v1/jobs/{job_id}")
        assert own_delete.status_code == 204


async def test_every_jobs_and_recordings_route_needs_a_valid_unrevoked_key(
    model_dir: Path, issued: IssuedKeys, data_dir: Path
) -> None:
    issued.add("other")
    app = app_with_keys(model_dir, issued)
    clock = ManualClock()
    use_clock(app, clock)
    async with callers(app, issued) as by:
        submitted = await by["other"].post(SUBMIT, **recording())
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        await wait_for_status(by["other"], job_id, ["succeeded"])
        routes = [("POST", SUBMIT), *job_routes(job_id)]

        for caller, invalid in (("none", False), ("wrong", True)):
            for method, path in routes:
                response = await send(by[caller], method, path)
                assert response.status_code == 401, (caller, method, path, response.text)
                challenge = response.headers["www-authenticate"]
                assert challenge.startswith("Bearer")
                assert ('error="invalid_token"' in challenge) is invalid
                assert response.headers["content-type"] == "application/problem+json"

        issued.revoke("other")
        next_reload(clock)
        for method, path in routes:
            response = await send(by["other"], method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert 'error="invalid_token"' in response.headers["www-authenticate"]

        # The refusals stored nothing and touched nothing: the job is as it was.
        kept = await by["boss"].get(f"/v1/jobs/{job_id}")
        assert kept.json()["status"] == "succeeded"
        assert (await by["boss"].get("/v1/jobs")).json()["total"] == 1
    assert leftover_uploads(data_dir) == []


# --- the running-jobs limit --------------------------------------------------------------------


async def test_the_running_jobs_limit_is_a_429_until_a_job_is_cancelled_or_finishes(
    model_dir: Path, issued: IssuedKeys, data_dir: Path
) -> None:
    issued.add("rig", max_running_jobs=1)
    app = app_with_keys(model_dir, issued)
    async with callers(app, issued) as by:
        rig = by["rig"]
        token = hold_the_only_slot(app)
        first = await rig.post(SUBMIT, **recording())
        assert first.status_code == 202, first.text
        first_id = first.json()["id"]

        refused = await rig.post(SUBMIT, **recording())
        assert problem(refused, 429, "limit-exceeded") == (
            "API key 'rig' is at its limit max_running_jobs=1 (1 queued or running); "
            "retry when one ends"
        )
        assert refused.headers["retry-after"] == "30"
        assert leftover_uploads(data_dir) == [first_id]
        # Another key's jobs are not counted against this one's limit.
        assert (await by["lab"].post(SUBMIT, **recording())).status_code == 202

        cancelled = await rig.delete(f"/v1/jobs/{first_id}")
        assert cancelled.json()["status"] == "cancelled"
        second = await rig.post(SUBMIT, **recording())
        assert second.status_code == 202, second.text
        again = await rig.post(SUBMIT, **recording())
        assert again.status_code == 429

        # The slot is given back: the queued jobs run, and once rig's has finished it may
        # submit again.
        assert app.state.service.jobs.release("elsewhere", token)
        app.state.service.runner.wake()
        await wait_for_status(rig, second.json()["id"], ["succeeded"])
        after = await rig.post(SUBMIT, **recording())
        assert after.status_code == 202, after.text
        await wait_for_status(rig, after.json()["id"], ["succeeded"])


# --- the bytes-per-day limit -------------------------------------------------------------------


def body_of(client: httpx.AsyncClient) -> tuple[bytes, str]:
    """A submission's body and Content-Type, as httpx would send them."""
    request = client.build_request("POST", SUBMIT, **recording())
    return request.read(), request.headers["content-type"]


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """The body with no Content-Length (chunked), as a client streaming from a camera sends."""
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


async def test_the_daily_bytes_limit_is_a_429_deleting_gives_nothing_back_a_new_day_does(
    model_dir: Path, issued: IssuedKeys, data_dir: Path
) -> None:
    measure = httpx.AsyncClient(base_url="http://testserver")
    body, content_type = body_of(measure)
    await measure.aclose()
    size = len(body)
    limit = size + size // 2  # one submission fits; a second does not
    issued.add("daily", recording_bytes_per_day=limit)
    app = app_with_keys(model_dir, issued)
    app.state.service.wall_clock = lambda: EVENING
    async with callers(app, issued) as by:
        daily = by["daily"]
        first = await daily.post(SUBMIT, content=body, headers={"Content-Type": content_type})
        assert first.status_code == 202, first.text
        first_id = first.json()["id"]
        store = app.state.service.jobs
        assert store.get(first_id).recording_bytes == size
        assert store.recording_bytes_on("daily", date(2026, 12, 1)) == size

        # Refused from its Content-Length, before a byte of the body is read.
        refused = await daily.post(SUBMIT, content=body, headers={"Content-Type": content_type})
        assert problem(refused, 429, "limit-exceeded") == (
            f"API key 'daily' is over its limit recording_bytes_per_day={limit} ({size} B "
            f"submitted today, UTC, this upload {size} B); retry after 00:00 UTC, in 7200 s"
        )
        assert refused.headers["retry-after"] == "7200"

        # Without a Content-Length: refused as the stream passes what is left of the day.
        streamed = await daily.post(
            SUBMIT, content=chunked(body), headers={"Content-Type": content_type}
        )
        detail = problem(streamed, 429, "limit-exceeded")
        assert detail.startswith(
            f"API key 'daily' is over its limit recording_bytes_per_day={limit} ({size} B "
            "submitted today, UTC, this upload "
        )
        assert detail.endswith(" B); retry after 00:00 UTC, in 7200 s")
        assert limit - size < int(detail.split("this upload ")[1].split(" B")[0]) <= size
        assert leftover_uploads(data_dir) == [first_id]

        # Deleting the job does not give its bytes back.
        await wait_for_status(daily, first_id, ["succeeded"])
        assert (await daily.delete(f"/v1/jobs/{first_id}")).status_code == 204
        after_delete = await daily.post(
            SUBMIT, content=body, headers={"Content-Type": content_type}
        )
        assert after_delete.status_code == 429
        assert store.recording_bytes_on("daily", date(2026, 12, 1)) == size

        # Other keys have their own days; a new UTC day, a new allowance.
        assert (await by["lab"].post(SUBMIT, **recording())).status_code == 202
        app.state.service.wall_clock = lambda: NEXT_MORNING
        next_day = await daily.post(SUBMIT, content=body, headers={"Content-Type": content_type})
        assert next_day.status_code == 202, next_day.text
        assert store.recording_bytes_on("daily", date(2026, 12, 2)) == size
        assert store.recording_bytes_on("daily", date(2026, 12, 1)) == size
        await wait_for_status(daily, next_day.json()["id"], ["succeeded"])


# --- keys off, and a job store that is away ----------------------------------------------------


@contextmanager
def quota_lookups_fail(app: FastAPI) -> Iterator[list[str]]:
    """Make the store's quota counts raise, recording each call."""
    store = app.state.service.jobs
    calls: list[str] = []

    def away(*args: object) -> int:
        calls.append(repr(args))
        raise ConnectionError("job store unreachable")

    store.running_jobs = away
    store.recording_bytes_on = away
    yield calls


async def test_with_keys_off_jobs_are_everyones_and_no_quota_is_looked_up(
    model_dir: Path,
) -> None:
    app = create_app(
        Settings(model_dir=model_dir, fluentd_host=None, access_log_stdout=False, **FAST_JOBS)
    )
    async with lifespan_client(app) as http:
        with quota_lookups_fail(app) as calls:
            submitted = await http.post(SUBMIT, **recording())
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            await wait_for_status(http, job_id, ["succeeded"])
            listed = (await http.get("/v1/jobs")).json()
        assert calls == []
        stored = app.state.service.jobs.get(job_id)
        assert stored.owner is None
        assert stored.recording_bytes == int(submitted.request.headers["content-length"])
        assert [job["id"] for job in listed["jobs"]] == [job_id]


async def test_clip_requests_never_ask_the_job_store_even_under_job_limits(
    model_dir: Path, issued: IssuedKeys
) -> None:
    issued.add("rig", max_running_jobs=1, recording_bytes_per_day=10)
    app = app_with_keys(model_dir, issued)
    async with callers(app, issued) as by:
        with quota_lookups_fail(app) as calls:
            classified = await by["rig"].post(
                "/v1/models/brightness/classify", files=files("frames", sequence(255))
            )
            predicted = await by["rig"].post("/predict", files=files("images", sequence(255)))
        assert classified.status_code == 200, classified.text
        assert classified.json()["label"] == "bright"
        assert predicted.status_code == 200, predicted.text
        assert calls == []


async def test_a_key_without_job_limits_submits_without_asking_the_store(
    model_dir: Path, issued: IssuedKeys
) -> None:
    app = app_with_keys(model_dir, issued)
    async with callers(app, issued) as by:
        with quota_lookups_fail(app) as calls:
            submitted = await by["lab"].post(SUBMIT, **recording())
        assert submitted.status_code == 202, submitted.text
        assert calls == []
        await wait_for_status(by["lab"], submitted.json()["id"], ["succeeded"])
