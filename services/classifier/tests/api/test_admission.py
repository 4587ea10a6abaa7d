"""Admission control: work beyond capacity, or that waited too long to start, is shed with 503
and Retry-After; probes and scrapes never are."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from classifier.api.arrival import ARRIVAL_KEY
from tests.support.app_client import app_client
from tests.support.frames import files, sequence
from tests.support.waiting import until_in_flight


@pytest.fixture
async def one_slot(model_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(model_dir, max_concurrency=1) as c:
        yield c


async def test_work_beyond_capacity_is_shed_with_retry_after(
    one_slot: httpx.AsyncClient,
) -> None:
    release = asyncio.Event()
    request = one_slot.build_request(
        "POST", "/v1/models/brightness/classify", files=files("frames", sequence(255))
    )
    body = request.read()

    async def held_body() -> AsyncIterator[bytes]:
        yield body[:100]
        await release.wait()  # the slot stays taken until the test lets go
        yield body[100:]

    headers = {k: v for k, v in request.headers.items() if k != "content-length"}
    holder = asyncio.create_task(
        one_slot.post("/v1/models/brightness/classify", content=held_body(), headers=headers)
    )
    await until_in_flight(one_slot, 1)  # the holder has the slot (scrapes are never shed)

    shed_v1 = await one_slot.post(
        "/v1/models/brightness/classify", files=files("frames", sequence(0))
    )
    shed_seed = await one_slot.post("/predict", files=files("images", sequence(0)))
    shed_oip = await one_slot.post("/v2/models/brightness/infer", json={"inputs": []})
    health = await one_slot.get("/health/ready")
    metrics = await one_slot.get("/metrics")
    release.set()
    held = await holder

    assert shed_v1.status_code == 503
    assert shed_v1.headers["retry-after"] == "1"
    assert shed_v1.headers["content-type"] == "application/problem+json"
    assert shed_v1.json()["title"] == "Service overloaded"
    assert shed_v1.json()["request_id"] == shed_v1.headers["x-request-id"]
    assert (shed_seed.status_code, shed_seed.json()) == (
        503,
        {"error": "the service is at capacity; retry shortly"},
    )
    assert (shed_oip.status_code, shed_oip.json()) == (
        503,
        {"error": "the service is at capacity; retry shortly"},
    )
    assert health.status_code == 200  # probes and scrapes are never shed
    assert 'classifier_requests_shed_total{reason="concurrency"} 3.0' in metrics.text
    assert "classifier_requests_in_flight 1.0" in metrics.text
    assert held.status_code == 200
    assert held.json()["label"] == "bright"
    after = await one_slot.post(
        "/v1/models/brightness/classify", files=files("frames", sequence(0))
    )
    assert after.status_code == 200


def arrived_ago(app: ASGIApp, seconds: float) -> ASGIApp:
    """The app behind a server that stamps every request as arrived ``seconds`` ago, as
    uvicorn does (through ``ArrivalStampingProtocol``) for a request that queued that long."""

    async def stamped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ARRIVAL_KEY] = time.perf_counter() - seconds
        await app(scope, receive, send)

    return stamped


async def _stamped_run(
    model_dir: Path, waited_s: float, max_queue_ms: float, requests: int
) -> tuple[list[httpx.Response], httpx.Response, str]:
    """``requests`` classifications in a row, each stamped as having queued ``waited_s``; then a
    health check (stamped alike) and the metrics."""
    stamped = app_client(
        model_dir, around=lambda app: arrived_ago(app, waited_s), max_queue_ms=max_queue_ms
    )
    async with stamped as client:
        responses = [
            await client.post(
                "/v1/models/brightness/classify", files=files("frames", sequence(255))
            )
            for _ in range(requests)
        ]
        health = await client.get("/health/ready")
        metrics = (await client.get("/metrics")).text
    return responses, health, metrics


async def test_a_standing_queue_is_shed_but_one_slow_moment_is_not(model_dir: Path) -> None:
    # Every request has waited 250 ms against a 100 ms budget: the first ones are served (a
    # single stall is not overload), and once the moving average of waits passes half the
    # budget, every further one is shed, before any decoding.
    responses, health, metrics = await _stamped_run(model_dir, 0.25, 100, requests=30)

    statuses = [r.status_code for r in responses]
    first_shed = statuses.index(503)
    assert 1 < first_shed < 30
    assert statuses == [200] * first_shed + [503] * (30 - first_shed)
    assert all(r.json()["label"] == "bright" for r in responses[:first_shed])
    shed = responses[-1]
    assert shed.headers["retry-after"] == "1"
    assert shed.headers["content-type"] == "application/problem+json"
    assert shed.json()["title"] == "Service overloaded"
    assert shed.json()["status"] == 503
    assert health.status_code == 200  # stamped just as old, but probes are never shed
    assert f'classifier_requests_shed_total{{reason="queue"}} {30 - first_shed}.0' in metrics
    # The waits are measured, and counted in each request's latency, which starts at arrival.
    assert "classifier_request_queue_seconds_count 30.0" in metrics
    assert 'classifier_request_queue_seconds_bucket{le="0.1"} 0.0' in metrics
    for route in ("unmatched", "/v1/models/{name}/classify"):  # shed ones never reach routing
        fast = f'classifier_request_duration_seconds_bucket{{le="0.25",route="{route}"}} 0.0'
        assert fast in metrics


@pytest.mark.parametrize(
    ("waited_s", "max_queue_ms"),
    [
        (0.04, 100),  # waits within the budget, however long they last
        (5.0, 0),  # 0 turns queue shedding off
    ],
)
async def test_waits_within_the_budget_or_with_shedding_off_are_served(
    model_dir: Path, waited_s: float, max_queue_ms: float
) -> None:
    responses, _, metrics = await _stamped_run(model_dir, waited_s, max_queue_ms, requests=30)

    assert [r.status_code for r in responses] == [200] * 30
    assert 'classifier_requests_shed_total{reason="queue"} 0.0' in metrics
