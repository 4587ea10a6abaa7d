"""``POST /predict``: the original service's contract, answered by the new one."""

from __future__ import annotations

import httpx
import pytest

from behaviour_clips import LABELS
from tests.served_model import ServedModel
from tests.uploads import ClipUploads, multipart


@pytest.mark.parametrize("label", LABELS)
async def test_predict_answers_the_class_index(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, label: str
) -> None:
    response = await client.post("/predict", files=clips.multipart("images", label, seed=0))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["predicted_class"] == model.index(label), f"{label}: {body['probabilities']}"
    assert body["label"] == label


@pytest.mark.parametrize("offset", [-1, +1, "just one"])
async def test_predict_with_the_wrong_number_of_images_is_400(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, offset: int | str
) -> None:
    count = 1 if isinstance(offset, str) else model.frames + offset
    frames = (clips.files("walk", seed=0) * 2)[:count]
    response = await client.post("/predict", files=multipart("images", frames))

    assert response.status_code == 400
    assert response.json() == {"error": f"Please upload exactly {model.frames} images."}


async def test_predict_without_images_is_400(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    """Frames under another field name are no images at all, as for the original service."""
    response = await client.post("/predict", files=clips.multipart("frames", "walk", seed=0))

    assert response.status_code == 400
    assert response.json() == {"error": f"Please upload exactly {model.frames} images."}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", None),
        (b'{"images": []}', "application/json"),
        (b"--x\r\n", "multipart/form-data"),
    ],
    ids=["no-body", "json", "multipart-without-boundary"],
)
async def test_predict_without_a_multipart_body_is_the_seed_400(
    client: httpx.AsyncClient, model: ServedModel, content: bytes, content_type: str | None
) -> None:
    """The original read ``request.files.getlist("images")``: no multipart body, no images."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post("/predict", content=content, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": f"Please upload exactly {model.frames} images."}
