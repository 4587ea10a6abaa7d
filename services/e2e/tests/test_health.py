"""Liveness, readiness, the landing document, and the request id every response carries."""

from __future__ import annotations

import httpx

from tests.request_ledger import new_request_id
from tests.served_model import ServedModel


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_readiness_names_the_served_model(
    client: httpx.AsyncClient, model: ServedModel
) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert model.name in body["models"]


async def test_landing_document_links_the_routes(
    client: httpx.AsyncClient, model: ServedModel
) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert model.name in body["models"]
    assert body["docs"] == "/docs"
    assert body["openapi"] == "/openapi.json"
    assert body["metrics"] == "/metrics"


async def test_a_sane_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    request_id = new_request_id()
    response = await client.get("/health/live", headers={"X-Request-ID": request_id})

    assert response.headers["x-request-id"] == request_id


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    unsafe = 'e2e with spaces, quotes " and {braces}'
    response = await client.get("/health/live", headers={"X-Request-ID": unsafe})

    assert response.status_code == 200
    assigned = response.headers["x-request-id"]
    assert assigned
    assert assigned != unsafe


async def test_a_request_without_an_id_is_given_one(base_url: str) -> None:
    # A client of its own, without the run's id-assigning hook.
    async with httpx.AsyncClient(base_url=base_url) as bare:
        first = await bare.get("/health/live")
        second = await bare.get("/health/live")

    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
