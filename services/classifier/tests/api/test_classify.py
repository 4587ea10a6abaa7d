"""POST /v1/models/{name}/classify: the native answer, with every field it promises."""

from __future__ import annotations

import httpx
import pytest

from tests.support.frames import files, sequence
from tests.support.tiny_models import LABELS

URL = "/v1/models/brightness/classify"


async def test_classify_answers_label_confidence_and_probabilities(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(URL, files=files("frames", sequence(170)))

    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "mid"
    assert body["class_index"] == 2
    assert body["model"] == {"name": "brightness", "version": "0.0.1"}
    assert body["frames"] == 24
    assert list(body["probabilities"]) == list(LABELS)
    assert body["confidence"] == body["probabilities"]["mid"]
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["top_k"][0]["label"] == "mid"
    assert len(body["top_k"]) == len(LABELS)
    assert body["request_id"] == response.headers["x-request-id"]
    timings = body["timings"]
    assert set(timings) == {"parse_ms", "decode_ms", "inference_ms", "total_ms"}
    assert all(value >= 0 for value in timings.values())
    assert timings["total_ms"] >= timings["inference_ms"]


async def test_classify_accepts_the_seed_field_name(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, files=files("images", sequence(0)))

    assert response.status_code == 200
    assert response.json()["label"] == "dark"


async def test_top_k_orders_and_truncates(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, params={"top_k": 2}, files=files("frames", sequence(90)))

    assert response.status_code == 200
    top = response.json()["top_k"]
    assert [entry["label"] for entry in top] == ["dim", "mid"]
    assert [entry["class_index"] for entry in top] == [1, 2]
    assert top[0]["probability"] > top[1]["probability"]


async def test_top_k_above_the_label_count_returns_all(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, params={"top_k": 50}, files=files("frames", sequence(90)))

    assert response.status_code == 200
    assert len(response.json()["top_k"]) == len(LABELS)


@pytest.mark.parametrize("top_k", ["0", "-1", "abc"])
async def test_bad_top_k_is_a_problem(client: httpx.AsyncClient, top_k: str) -> None:
    response = await client.post(URL, params={"top_k": top_k}, files=files("frames", sequence(90)))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert "top_k" in problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_wrong_frame_count_is_a_problem_naming_both_counts(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(URL, files=files("frames", sequence(90, count=23)))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Wrong number of frames"
    assert problem["detail"] == "expected exactly 24 frames, received 23"
    assert problem["type"].endswith("/wrong-frame-count")
    assert problem["instance"] == URL


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/models/nope/classify", files=files("frames", sequence(90)))

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "nope" in response.json()["detail"]
    assert "brightness" in response.json()["detail"]
