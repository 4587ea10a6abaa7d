"""Admission control: work beyond capacity, or that waited too long to start, is shed with 503
and Retry-After; probes and scrapes never are."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp, Receive, Scope, Send

from classifier.api.arrival import ARRIVAL_KEY
from classifier.core.config import Settings
from classifier.main import create_app
from tests.support.app_client import app_client
from tests.support.frames import files, sequence


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
    await asyncio.sleep(0.05)

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


@pytest.mark.parametrize(
    ("waited_s", "max_queue_ms", "expected"),
    [
        (0.25, 100, 503),  # waited past the budget: shed before any decoding
        (0.05, 100, 200),  # within the budget
        (5.0, 0, 200),  # 0 turns queue shedding off
    ],
)
async def test_work_that_waited_past_the_queue_budget_is_shed(
    model_dir: Path, waited_s: float, max_queue_ms: float, expected: int
) -> None:
    settings = Settings(
        model_dir=model_dir,
        fluentd_host=None,
        access_log_stdout=False,
        max_queue_ms=max_queue_ms,
    )
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=arrived_ago(manager.app, waited_s))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/v1/models/brightness/classify", files=files("frames", sequence(255))
            )
            health = await client.get("/health/ready")
            metrics = (await client.get("/metrics")).text

    assert response.status_code == expected
    assert health.status_code == 200  # stamped just as old, but probes are never shed
    shed_line = 'classifier_requests_shed_total{reason="queue"} 1.0'
    assert (shed_line in metrics) is (expected == 503)
    if expected == 503:
        assert response.headers["retry-after"] == "1"
        assert response.json()["title"] == "Service overloaded"
        assert response.json()["status"] == 503
    else:
        assert response.json()["label"] == "bright"
    # The wait is measured and counted in the request's latency, which starts at arrival.
    assert "classifier_request_queue_seconds_count 1.0" in metrics
    assert 'classifier_request_queue_seconds_bucket{le="0.025"} 0.0' in metrics
    route = "unmatched" if expected == 503 else "/v1/models/{name}/classify"
    fast = f'classifier_request_duration_seconds_bucket{{le="0.025",route="{route}"}} 0.0'
    assert fast in metrics
