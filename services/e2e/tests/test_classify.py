"""``POST /v1/models/{name}/classify`` with generated clips: every class comes back as itself."""

from __future__ import annotations

import math

import httpx
import pytest

from behaviour_clips import LABELS
from tests.served_model import ServedModel
from tests.uploads import ClipUploads

#: Held-out seeds: the training script draws its clips from seeds of 1 000 000 and up.
SEEDS = (0, 1, 2)


async def test_the_served_model_knows_the_generated_behaviours(model: ServedModel) -> None:
    """Without this, the class checks below would compare unrelated label sets."""
    assert set(LABELS) <= set(model.labels), f"{model.name} labels {model.labels}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label", LABELS)
async def test_a_png_clip_of_each_class_is_that_class(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, label: str, seed: int
) -> None:
    response = await client.post(model.classify_url, files=clips.multipart("frames", label, seed))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["label"], body["class_index"]) == (label, model.index(label)), (
        f"{label} clip (seed {seed}) classified as {body['label']}: {body['probabilities']}"
    )


@pytest.mark.parametrize("encoding", ["jpeg_q75", "rgb_2x"])
@pytest.mark.parametrize("label", LABELS)
async def test_other_encodings_of_each_class_are_that_class(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, label: str, encoding: str
) -> None:
    """JPEG at quality 75, and RGB frames of twice the size that the service converts."""
    files = clips.multipart("frames", label, seed=0, encoding=encoding)
    response = await client.post(model.classify_url, files=files)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == label, f"{label} clip ({encoding}): {body['probabilities']}"


async def test_a_classification_answers_in_full(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    response = await client.post(model.classify_url, files=clips.multipart("frames", "walk", 0))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["model"] == {"name": model.name, "version": model.version}
    assert body["frames"] == model.frames
    probabilities = body["probabilities"]
    assert list(probabilities) == list(model.labels)
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-4)
    assert body["confidence"] == probabilities[body["label"]] == max(probabilities.values())
    ranking = body["top_k"]
    assert len(ranking) == len(model.labels)
    assert ranking[0] == {
        "label": body["label"],
        "class_index": body["class_index"],
        "probability": body["confidence"],
    }
    ranked = [entry["probability"] for entry in ranking]
    assert ranked == sorted(ranked, reverse=True)
    for entry in ranking:
        assert model.labels[entry["class_index"]] == entry["label"]
    timings = body["timings"]
    assert set(timings) == {"parse_ms", "decode_ms", "inference_ms", "total_ms"}
    assert all(value >= 0 for value in timings.values())


async def test_top_k_limits_the_ranking(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    response = await client.post(
        model.classify_url, params={"top_k": 3}, files=clips.multipart("frames", "rear", 0)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top_k"][0]["label"] == "rear", body["probabilities"]
    assert len(body["top_k"]) == 3
    assert len(body["probabilities"]) == len(model.labels)


async def test_frames_also_arrive_as_images(
    client: httpx.AsyncClient, clips: ClipUploads, model: ServedModel
) -> None:
    """The field name of the original API is accepted on /v1 too."""
    response = await client.post(model.classify_url, files=clips.multipart("images", "eat", 0))

    assert response.status_code == 200, response.text
    assert response.json()["label"] == "eat", response.json()["probabilities"]
