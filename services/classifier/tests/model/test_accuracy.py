"""The bundled model separates the classes on held-out synthetic clips, delivered clean, as
JPEG quality 75, and as 128x128 RGB frames the service converts and resizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from training.heldout import (
    TRAIN_SEED_START,
    VALIDATION_SEED_START,
    Evaluation,
    Runner,
    evaluate,
    heldout_items,
)

from behaviour_clips import LABELS
from classifier.model.manifest import InputSpec

PER_CLASS = 40
OVERALL_TARGET = 0.97
PER_CLASS_TARGET = 0.93
DEGRADED_MARGIN = 0.03


@pytest.fixture(scope="module")
def clean(run_model: Runner, spec: InputSpec) -> Evaluation:
    return evaluate(run_model, spec, heldout_items(PER_CLASS), "png")


def test_heldout_seeds_are_never_training_or_validation_seeds(manifest: dict[str, Any]) -> None:
    recorded = heldout_items(manifest["metrics"]["heldout_clips"] // len(LABELS))
    assert heldout_items(PER_CLASS) == recorded[: PER_CLASS * len(LABELS)]
    assert max(seed for _, seed in recorded) < VALIDATION_SEED_START < TRAIN_SEED_START
    with pytest.raises(ValueError, match="per_class"):
        heldout_items(VALIDATION_SEED_START + 1)


def test_clean_accuracy_overall_and_per_class(clean: Evaluation) -> None:
    assert clean.clips == PER_CLASS * len(LABELS)
    assert clean.accuracy >= OVERALL_TARGET
    assert min(clean.per_class_accuracy.values()) >= PER_CLASS_TARGET, clean.per_class_accuracy


@pytest.mark.parametrize("variant", ["jpeg_q75", "rgb128"])
def test_degraded_delivery_stays_within_3_points(
    variant: str, clean: Evaluation, run_model: Runner, spec: InputSpec
) -> None:
    degraded = evaluate(run_model, spec, heldout_items(PER_CLASS), variant)
    assert degraded.accuracy >= clean.accuracy - DEGRADED_MARGIN, degraded.per_class_accuracy


def test_recorded_metrics_meet_the_targets(manifest: dict[str, Any]) -> None:
    metrics = manifest["metrics"]
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (len(LABELS), len(LABELS))
    assert int(confusion.sum()) == metrics["heldout_clips"]
    assert set(confusion.sum(axis=1).tolist()) == {metrics["heldout_clips"] // len(LABELS)}
    assert np.trace(confusion) / confusion.sum() == pytest.approx(
        metrics["heldout_accuracy"], abs=1e-4
    )
    assert metrics["heldout_accuracy"] >= OVERALL_TARGET
    assert list(metrics["per_class_accuracy"]) == list(LABELS)
    assert min(metrics["per_class_accuracy"].values()) >= PER_CLASS_TARGET
    for key in ("jpeg_q75_accuracy", "rgb128_resized_accuracy"):
        assert metrics[key] >= metrics["heldout_accuracy"] - DEGRADED_MARGIN
