"""``GET /metrics``: Prometheus counts of what the suite just did, by route and status."""

from __future__ import annotations

import httpx

from tests.oip import json_infer_request
from tests.prometheus import requests_counted, samples
from tests.served_model import ServedModel
from tests.uploads import ClipUploads

#: Every family docs/api.md lists.
FAMILIES = (
    "classifier_requests_total",
    "classifier_request_duration_seconds_bucket",
    "classifier_inference_seconds_bucket",
    "classifier_decode_seconds_bucket",
    "classifier_batch_size_bucket",
    "classifier_requests_in_flight",
    "classifier_inference_queue_depth",
    "classifier_requests_shed_total",
    "classifier_log_records_dropped_total",
)


async def _metrics(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_lists_every_documented_family(client: httpx.AsyncClient) -> None:
    names = {name for name, _, _ in samples(await _metrics(client))}

    assert set(FAMILIES) <= names, f"missing: {sorted(set(FAMILIES) - names)}"


async def test_requests_are_counted_by_route_and_status(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    before = await _metrics(client)
    assert (await client.get("/health/ready")).status_code == 200
    classify = await client.post(model.classify_url, files=clips.multipart("frames", "walk", 0))
    assert classify.status_code == 200
    predict = await client.post("/predict", files=clips.multipart("images", "walk", 0))
    assert predict.status_code == 200
    refused = await client.post(model.classify_url, content=b"{}")
    assert refused.status_code == 415

    after = await _metrics(client)

    def counted(route: str, method: str, status: int) -> float:
        """What this test's own requests added (the suite's tests run one at a time)."""
        return requests_counted(after, route, method, status) - requests_counted(
            before, route, method, status
        )

    # A healthcheck (compose polls /health/ready) may add to the suite's own probe.
    assert counted("/health/ready", "GET", 200) >= 1
    assert counted("/v1/models/{}/classify", "POST", 200) == 1
    assert counted("/v1/models/{}/classify", "POST", 415) == 1
    assert counted("/predict", "POST", 200) == 1


async def test_oip_inference_is_counted(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    request = json_infer_request(model, clips.pixels("walk", 0))
    before = requests_counted(await _metrics(client), "/v2/models/{}/infer", "POST", 200)
    response = await client.post(model.infer_url, json=request)
    assert response.status_code == 200, response.text

    after = requests_counted(await _metrics(client), "/v2/models/{}/infer", "POST", 200)

    assert after - before == 1
