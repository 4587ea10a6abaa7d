"""POST /predict keeps the original Flask service's contract."""

from __future__ import annotations

import httpx
import pytest

from tests.support.frames import files, sequence
from tests.support.tiny_models import LABELS


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (85, 1), (170, 2), (255, 3)])
async def test_predict_answers_the_class_index(
    client: httpx.AsyncClient, value: int, expected: int
) -> None:
    response = await client.post("/predict", files=files("images", sequence(value)))

    assert response.status_code == 200
    body = response.json()
    assert body["predicted_class"] == expected
    assert body["label"] == LABELS[expected]
    assert set(body["probabilities"]) == set(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert max(body["probabilities"], key=body["probabilities"].get) == LABELS[expected]


@pytest.mark.parametrize("count", [0, 1, 23, 25, 48])
async def test_predict_wrong_count_is_the_seed_400(client: httpx.AsyncClient, count: int) -> None:
    frames = sequence(100, count=count)
    # With no frames at all, send another field so the body is still multipart.
    upload = files("images", frames) if frames else [("note", (None, b"x", "text/plain"))]
    response = await client.post("/predict", files=upload)

    assert response.status_code == 400
    assert response.json() == {"error": "Please upload exactly 24 images."}


async def test_predict_only_counts_the_images_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", files=files("frames", sequence(100)))

    assert response.status_code == 400
    assert response.json() == {"error": "Please upload exactly 24 images."}


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"", {}),  # no body, no content type
        (b"{}", {"content-type": "application/json"}),
        (b"images=a.png", {"content-type": "application/x-www-form-urlencoded"}),
        (b"--x\r\n", {"content-type": "multipart/form-data"}),  # no boundary
        (
            b'--B\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\nab',
            {"content-type": "multipart/form-data; boundary=B"},
        ),  # cut short
    ],
    ids=["no-body", "json", "urlencoded", "no-boundary", "truncated"],
)
async def test_predict_refuses_a_body_without_images_as_the_seed_did(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    """The original read request.files.getlist("images"): no usable multipart body, no images."""
    response = await client.post("/predict", content=content, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Please upload exactly 24 images."}


async def test_v1_still_refuses_a_body_that_is_not_multipart_with_415(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/models/brightness/classify",
        content=b"{}",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


async def test_predict_errors_keep_the_seed_shape(client: httpx.AsyncClient) -> None:
    frames = sequence(100)
    frames[3] = b"not an image"
    response = await client.post("/predict", files=files("images", frames))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]
    assert "frame 3" in response.json()["error"]
