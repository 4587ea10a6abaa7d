"""Model metadata, health, the landing page, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from classifier.core.config import Settings
from classifier.main import create_app
from tests.support.frames import files, sequence
from tests.support.tiny_models import LABELS


async def test_model_list_and_detail_serve_the_manifest(client: httpx.AsyncClient) -> None:
    listing = await client.get("/v1/models")
    detail = await client.get("/v1/models/brightness")

    assert listing.status_code == 200
    assert detail.status_code == 200
    assert listing.json()["models"] == [detail.json()]
    info = detail.json()
    assert info["name"] == "brightness"
    assert info["version"] == "0.0.1"
    assert info["labels"] == list(LABELS)
    assert len(info["sha256"]) == 64
    assert info["input"]["shape"] == [-1, 24, 64, 64, 1]
    assert info["input"]["layout"] == "NTHWC"
    assert info["output"] == {"name": "logits", "kind": "logits"}
    assert info["ready"] is True


async def test_unknown_model_detail_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/missing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_health_live_and_ready(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "models": ["brightness"]})


async def test_ready_is_503_before_start_up_and_after_shutdown(settings: Settings) -> None:
    app: FastAPI = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        before = await http.get("/health/ready")
        async with LifespanManager(app):
            during = await http.get("/health/ready")
        after = await http.get("/health/ready")

    assert before.status_code == 503
    assert during.status_code == 200
    assert after.status_code == 503
    assert after.headers["retry-after"] == "1"


async def test_root_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.json()["models"] == ["brightness"]
    assert response.json()["docs"] == "/docs"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    missing = await client.get("/no/such/route")

    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    assert all(len(value) == 32 for value in ids)
    assert missing.status_code == 404
    assert "x-request-id" in missing.headers


async def test_a_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/models/brightness/classify",
        headers={"X-Request-ID": "trace-42.a"},
        files=files("frames", sequence(10)),
    )

    assert response.headers["x-request-id"] == "trace-42.a"
    assert response.json()["request_id"] == "trace-42.a"


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "a b{c}" + "x" * 200})

    assert response.headers["x-request-id"] != "a b{c}" + "x" * 200
    assert len(response.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    await client.post("/v1/models/brightness/classify", files=files("frames", sequence(10)))
    await client.post("/predict", files=files("images", sequence(10, count=3)))
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    classify = 'route="/v1/models/{name}/classify"'
    assert f'classifier_requests_total{{method="POST",{classify},status="200"}} 1.0' in text
    assert 'classifier_requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert "classifier_batch_size_count 1.0" in text
    assert "classifier_inference_seconds_count 1.0" in text
    assert "classifier_log_records_dropped_total 0.0" in text
    assert "classifier_requests_in_flight 0.0" in text
    assert 'classifier_requests_shed_total{reason="concurrency"} 0.0' in text
    assert 'classifier_requests_shed_total{reason="queue"} 0.0' in text


async def test_openapi_documents_every_route_with_multipart_bodies(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    paths = spec["paths"]
    for path in (
        "/predict",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/classify",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/",
    ):
        assert path in paths, path
    body = paths["/v1/models/{name}/classify"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["frames"]["type"] == "array"
    seed = paths["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "images" in seed["schema"]["properties"]
    for operation in (paths["/predict"]["post"], paths["/v1/models/{name}/classify"]["post"]):
        assert operation["description"]
