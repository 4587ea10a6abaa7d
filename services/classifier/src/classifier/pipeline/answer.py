"""Stage 5, shape the answer: class probabilities to a label, a confidence and the top k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from classifier.core.arrays import FloatArray


@dataclass(frozen=True, slots=True)
class RankedLabel:
    label: str
    class_index: int
    probability: float


@dataclass(frozen=True, slots=True)
class Classification:
    """The model's verdict on one sequence."""

    class_index: int
    label: str
    confidence: float
    probabilities: dict[str, float]
    top_k: list[RankedLabel]


def classify(probabilities: FloatArray, labels: Sequence[str], top_k: int) -> Classification:
    """Turn one row of class probabilities into a Classification with ``top_k`` ranked labels."""
    values = [float(p) for p in probabilities]
    # Stable sort: ties keep label order, so answers are deterministic.
    order = sorted(range(len(values)), key=lambda i: -values[i])
    best = order[0]
    return Classification(
        class_index=best,
        label=labels[best],
        confidence=values[best],
        probabilities={label: values[i] for i, label in enumerate(labels)},
        top_k=[RankedLabel(labels[i], i, values[i]) for i in order[:top_k]],
    )
