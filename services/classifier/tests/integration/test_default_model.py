"""The bundled model, served by a real uvicorn process, recognises one clip of every class."""

from __future__ import annotations

import httpx
import pytest

from behaviour_clips import LABELS, clip_to_png_bytes, generate_clip
from classifier.core.config import DEFAULT_MODEL_DIR
from tests.support.frames import files
from tests.support.server import running_classifier

pytestmark = pytest.mark.integration

SEED = 1  # held out: training draws its clips from seeds at TRAIN_SEED_START and up


async def test_every_class_comes_back_over_http() -> None:
    clips = {label: clip_to_png_bytes(generate_clip(label, SEED)) for label in LABELS}
    with running_classifier(DEFAULT_MODEL_DIR) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            models = (await client.get("/v1/models")).json()["models"]
            classified = {
                label: await client.post(
                    "/v1/models/rodent-behaviour/classify", files=files("frames", frames)
                )
                for label, frames in clips.items()
            }
            predicted = {
                label: await client.post("/predict", files=files("images", frames))
                for label, frames in clips.items()
            }

    assert [m["name"] for m in models] == ["rodent-behaviour"]
    assert models[0]["labels"] == list(LABELS)
    for label in LABELS:
        assert classified[label].status_code == 200
        assert classified[label].json()["label"] == label
        assert predicted[label].json()["predicted_class"] == LABELS.index(label)
