"""Admission control: at capacity, work is shed at once with 503 and Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

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
    assert "classifier_requests_shed_total 3.0" in metrics.text
    assert "classifier_requests_in_flight 1.0" in metrics.text
    assert held.status_code == 200
    assert held.json()["label"] == "bright"
    after = await one_slot.post(
        "/v1/models/brightness/classify", files=files("frames", sequence(0))
    )
    assert after.status_code == 200
