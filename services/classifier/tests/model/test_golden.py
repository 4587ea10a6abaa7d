"""The bundled model gives the recorded answer on a fixed clip, as the service computes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from training.heldout import service_probabilities

from behaviour_clips import LABELS, clip_to_png_bytes, generate_clip
from classifier.model.runtime import SequenceModel

GOLDEN = json.loads((Path(__file__).parent / "golden.json").read_text())


def test_golden_clip_is_still_the_recorded_clip() -> None:
    # If this fails the generator changed: retrain (`make model`), which records a new fixture.
    clip = generate_clip(GOLDEN["label"], GOLDEN["seed"])
    assert hashlib.sha256(clip.tobytes()).hexdigest() == GOLDEN["clip_sha256"]


def test_fixture_belongs_to_the_bundled_model(manifest: dict[str, Any]) -> None:
    assert GOLDEN["model_sha256"] == manifest["sha256"]


def test_golden_probabilities(model: SequenceModel) -> None:
    clip = generate_clip(GOLDEN["label"], GOLDEN["seed"])
    probabilities = service_probabilities(model, clip_to_png_bytes(clip))
    np.testing.assert_allclose(
        probabilities, GOLDEN["probabilities"], atol=GOLDEN["tolerance"], rtol=0
    )
    assert int(np.argmax(probabilities)) == LABELS.index(GOLDEN["label"])
