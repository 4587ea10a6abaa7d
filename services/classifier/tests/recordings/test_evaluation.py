"""The accuracy metrics of `make evaluate` on tiny sequences whose scores are worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.recordings.evaluation import (
    SegmentCounts,
    budget_error_points,
    confusion_matrix,
    edit_score,
    levenshtein,
    macro_f1,
    per_label_f1,
    score_recording,
    score_set,
    segment_counts,
    segments,
)

# Truth: six frames of 0, four of 1. Prediction: over-segmented, with two 1s inside the 0s.
TRUTH = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
OVER = [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]
# A prediction with the right segments and boundaries one frame off.
TRUTH_3 = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
SHIFTED = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2]


def test_segments_have_exclusive_ends() -> None:
    assert segments(OVER) == [(0, 0, 2), (1, 2, 4), (0, 4, 6), (1, 6, 10)]
    assert segments([]) == []


def test_levenshtein() -> None:
    assert levenshtein([1, 2, 3], [1, 3]) == 1
    assert levenshtein([], [1, 2]) == 2
    assert levenshtein([0, 1, 0, 1], [0, 1]) == 2
    assert levenshtein([5, 6], [5, 6]) == 0


def test_edit_score_is_normalised_by_the_longer_segment_sequence() -> None:
    assert edit_score(OVER, TRUTH) == pytest.approx(50.0)  # [0 1 0 1] vs [0 1]
    assert edit_score(SHIFTED, TRUTH_3) == pytest.approx(100.0)
    assert edit_score([2, 2, 2], [0, 0, 0]) == pytest.approx(0.0)


def test_f1_at_k_matches_each_true_segment_once_by_iou() -> None:
    # Predicted segments' IoU with the true 0 segment: 2/6 and 2/6; the last 1 segment: 1.0.
    assert segment_counts(OVER, TRUTH, 0.10) == SegmentCounts(tp=2, fp=2, fn=0)
    assert segment_counts(OVER, TRUTH, 0.50) == SegmentCounts(tp=1, fp=3, fn=1)
    assert segment_counts(OVER, TRUTH, 0.10).f1 == pytest.approx(200 / 3)
    assert segment_counts(OVER, TRUTH, 0.50).f1 == pytest.approx(100 / 3)
    # IoUs 3/4, 4/5, 1: every segment matches up to k = 0.75.
    assert segment_counts(SHIFTED, TRUTH_3, 0.75) == SegmentCounts(tp=3, fp=0, fn=0)
    assert segment_counts(SHIFTED, TRUTH_3, 0.76) == SegmentCounts(tp=2, fp=1, fn=1)
    assert SegmentCounts(0, 0, 0).f1 == 0.0


def test_frame_scores_from_the_confusion_matrix() -> None:
    matrix = confusion_matrix(OVER, TRUTH, 3)
    assert matrix.tolist() == [[4, 2, 0], [0, 4, 0], [0, 0, 0]]
    assert per_label_f1(matrix) == [pytest.approx(0.8), pytest.approx(0.8), None]
    assert macro_f1(matrix) == pytest.approx(0.8)  # the absent label is left out
    assert budget_error_points(OVER, TRUTH, 3) == [
        pytest.approx(20.0),
        pytest.approx(20.0),
        0.0,
    ]


def test_a_set_pools_frames_and_segment_counts_and_averages_edit() -> None:
    first = score_recording(SHIFTED, TRUTH_3, 3)
    second = score_recording(OVER, TRUTH, 3)
    assert (first.correct, second.correct) == (9, 8)
    result = score_set([first, second])
    assert result.frames == 20
    assert result.accuracy == pytest.approx(17 / 20)
    assert result.edit == pytest.approx(75.0)
    # F1@50: (3, 0, 0) + (1, 3, 1) = (4, 3, 1): precision 4/7, recall 4/5.
    assert result.f1_at[0.5] == pytest.approx(200 / 3)
    assert result.budget_error_mean[0] == pytest.approx((10 + 20) / 2)
    assert result.budget_error_max[0] == pytest.approx(20.0)
    assert result.confusion.tolist() == [[7, 3, 0], [0, 8, 0], [0, 0, 2]]


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="9 predicted labels for 10"):
        score_recording(np.zeros(9, dtype=np.int64), TRUTH, 2)
