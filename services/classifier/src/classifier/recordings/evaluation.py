"""Accuracy of per-frame labels against the truth, as action-segmentation papers measure it.

Frame accuracy, per-label and macro F1 over frames, a confusion matrix, the time-budget error
per label in percentage points, and MS-TCN's segmental metrics (Farha and Gall, CVPR 2019):
the edit score (Levenshtein distance between the segment label sequences, normalised by the
longer one) and F1@k (a predicted segment is a true positive when its IoU with a not yet
matched true segment of the same label, the best-overlapping one, is at least k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
Segment = tuple[int, int, int]  # label, first frame, end frame (exclusive)

OVERLAPS = (0.10, 0.25, 0.50)


def segments(labels: Sequence[int] | IntArray) -> list[Segment]:
    """Maximal runs of one label as (label, start, end) with ``end`` exclusive."""
    array = np.asarray(labels, dtype=np.int64)
    if len(array) == 0:
        return []
    changes = np.flatnonzero(np.diff(array)) + 1
    starts = [0, *changes.tolist()]
    ends = [*changes.tolist(), len(array)]
    return [(int(array[s]), s, e) for s, e in zip(starts, ends, strict=True)]


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
        previous = current
    return previous[-1]


def edit_score(predicted: Sequence[int] | IntArray, truth: Sequence[int] | IntArray) -> float:
    """MS-TCN's segmental edit score in 0..100 (100: the same sequence of segment labels)."""
    p = [label for label, _, _ in segments(predicted)]
    t = [label for label, _, _ in segments(truth)]
    longest = max(len(p), len(t))
    if longest == 0:
        return 100.0
    return (1.0 - levenshtein(p, t) / longest) * 100.0


@dataclass(frozen=True, slots=True)
class SegmentCounts:
    tp: int
    fp: int
    fn: int

    def __add__(self, other: SegmentCounts) -> SegmentCounts:
        return SegmentCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def f1(self) -> float:
        """F1 in 0..100, as MS-TCN reports it (0 when there is nothing to match)."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall) * 100.0


def segment_counts(
    predicted: Sequence[int] | IntArray, truth: Sequence[int] | IntArray, overlap: float
) -> SegmentCounts:
    """MS-TCN's F1@overlap matching for one recording."""
    pred, true = segments(predicted), segments(truth)
    hits = [False] * len(true)
    tp = fp = 0
    for label, start, end in pred:
        best, best_iou = -1, 0.0
        for index, (t_label, t_start, t_end) in enumerate(true):
            if t_label != label:
                continue
            intersection = min(end, t_end) - max(start, t_start)
            if intersection <= 0:
                continue
            union = max(end, t_end) - min(start, t_start)
            iou = intersection / union
            if iou > best_iou:
                best, best_iou = index, iou
        if best >= 0 and best_iou >= overlap and not hits[best]:
            tp += 1
            hits[best] = True
        else:
            fp += 1
    return SegmentCounts(tp, fp, len(true) - sum(hits))


def confusion_matrix(
    predicted: Sequence[int] | IntArray, truth: Sequence[int] | IntArray, labels: int
) -> IntArray:
    """counts[true][predicted] over frames."""
    matrix = np.zeros((labels, labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def per_label_f1(matrix: IntArray) -> list[float | None]:
    """Each label's frame F1 in 0..1 from a confusion matrix; None where the label is neither
    true nor predicted anywhere."""
    scores: list[float | None] = []
    for k in range(len(matrix)):
        tp = int(matrix[k, k])
        fp = int(matrix[:, k].sum()) - tp
        fn = int(matrix[k, :].sum()) - tp
        if tp + fp + fn == 0:
            scores.append(None)
        else:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return scores


def macro_f1(matrix: IntArray) -> float:
    """Mean of the per-label F1 over the labels that occur (true or predicted)."""
    present = [score for score in per_label_f1(matrix) if score is not None]
    return float(np.mean(present)) if present else 0.0


def budget_error_points(
    predicted: Sequence[int] | IntArray, truth: Sequence[int] | IntArray, labels: int
) -> list[float]:
    """|predicted share - true share| of the frames, per label, in percentage points."""
    p = np.bincount(np.asarray(predicted), minlength=labels) / max(len(predicted), 1)
    t = np.bincount(np.asarray(truth), minlength=labels) / max(len(truth), 1)
    return [float(abs(a - b) * 100.0) for a, b in zip(p, t, strict=True)]


@dataclass(frozen=True, slots=True)
class RecordingScore:
    """One recording's scores (segment counts kept so a set can be pooled as MS-TCN does)."""

    frames: int
    correct: int
    edit: float
    counts: dict[float, SegmentCounts]
    budget_error: list[float]
    confusion: IntArray


def score_recording(
    predicted: Sequence[int] | IntArray, truth: Sequence[int] | IntArray, labels: int
) -> RecordingScore:
    p, t = np.asarray(predicted, dtype=np.int64), np.asarray(truth, dtype=np.int64)
    if p.shape != t.shape:
        raise ValueError(f"{len(p)} predicted labels for {len(t)} true ones")
    return RecordingScore(
        frames=len(t),
        correct=int(np.count_nonzero(p == t)),
        edit=edit_score(p, t),
        counts={k: segment_counts(p, t, k) for k in OVERLAPS},
        budget_error=budget_error_points(p, t, labels),
        confusion=confusion_matrix(p, t, labels),
    )


@dataclass(frozen=True, slots=True)
class SetScore:
    """Scores over a set of recordings: frames pooled, edit averaged, F1@k from pooled counts
    (as MS-TCN's evaluation script sums them over videos), budget error averaged."""

    recordings: int
    frames: int
    accuracy: float
    macro_f1: float
    label_f1: list[float | None]
    edit: float
    f1_at: dict[float, float]
    budget_error_mean: list[float]
    budget_error_max: list[float]
    confusion: IntArray


def score_set(scores: Sequence[RecordingScore]) -> SetScore:
    if not scores:
        raise ValueError("no recordings to score")
    confusion = sum((score.confusion for score in scores), np.zeros_like(scores[0].confusion))
    frames = sum(score.frames for score in scores)
    f1_at = {}
    for k in OVERLAPS:
        pooled = SegmentCounts(0, 0, 0)
        for score in scores:
            pooled = pooled + score.counts[k]
        f1_at[k] = pooled.f1
    errors = np.array([score.budget_error for score in scores])
    return SetScore(
        recordings=len(scores),
        frames=frames,
        accuracy=sum(score.correct for score in scores) / frames,
        macro_f1=macro_f1(confusion),
        label_f1=per_label_f1(confusion),
        edit=float(np.mean([score.edit for score in scores])),
        f1_at=f1_at,
        budget_error_mean=errors.mean(axis=0).tolist(),
        budget_error_max=errors.max(axis=0).tolist(),
        confusion=confusion,
    )
