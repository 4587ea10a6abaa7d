"""Smoothing, bouts, time budgets, transitions and bins on hand-made label sequences.

Frames are 100 ms long (10 fps) unless a test says otherwise, so thresholds read in frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from classifier.recordings.bouts import (
    FrameTimes,
    binned_budget,
    bouts_of,
    runs,
    smooth,
    time_budget,
    transitions,
)

NAMES = ("a", "b", "c", "d")


def _labels(text: str) -> np.ndarray:
    """'aaab' -> [0, 0, 0, 1]."""
    return np.array([NAMES.index(char) for char in text], dtype=np.int64)


def _text(labels: np.ndarray) -> str:
    return "".join(NAMES[k] for k in labels)


def _smooth(text: str, ms: float | dict[str, float]) -> str:
    thresholds = (
        [ms.get(name, 0.0) / 1000 for name in NAMES]
        if isinstance(ms, dict)
        else [ms / 1000] * len(NAMES)
    )
    times = FrameTimes.regular(len(text), fps=10)
    return _text(smooth(_labels(text), times, thresholds))


@pytest.mark.parametrize(
    ("raw", "ms", "expected"),
    [
        # Gap filling: a stretch shorter than X's threshold between two bouts of X becomes X.
        ("aaaabaaaa", 150, "aaaaaaaaa"),
        ("aaaaabcaaaaa", 300, "aaaaaaaaaaaa"),  # a gap of two short bouts
        # A gap of exactly the threshold is not shorter than it; nor is the bout in it.
        ("aaaaabbbaaaaa", 300, "aaaaabbbaaaaa"),
        # Dropping: a short bout goes to its longer neighbour ...
        ("aaaaabcc", 150, "aaaaaacc"),
        # ... to the earlier one on a tie ...
        ("aaabccc", 150, "aaaaccc"),
        # ... and the first or last bout to its only neighbour.
        ("baaaaa", 150, "aaaaaa"),
        ("aaaaab", 150, "aaaaaa"),
        # Shortest first: b goes (into a), then c (a is now longer than d).
        ("aaaabcdddd", 150, "aaaaaadddd"),
        # Everything shorter than the threshold ends as one bout.
        ("abab", 10_000, "aaaa"),
        # Off: 0 leaves the labels alone.
        ("abab", 0, "abab"),
    ],
)
def test_smoothing_fills_gaps_then_drops_short_bouts(raw: str, ms: float, expected: str) -> None:
    assert _smooth(raw, ms) == expected


def test_a_per_label_threshold_smooths_only_its_label() -> None:
    # b's threshold removes the two-frame b; a's (none) fills no gap, c's stays untouched.
    assert _smooth("aaaaabbaaaaac", {"b": 250}) == "aaaaaaaaaaaac"
    # A gap is filled by the threshold of the label around it, not of the label inside it.
    assert _smooth("aaaaabbaaaaa", {"a": 250}) == "aaaaaaaaaaaa"
    assert _smooth("aaaaabbaaaaa", {"a": 150}) == "aaaaabbaaaaa"


def test_smoothing_measures_time_not_frames() -> None:
    # Variable frame rate: the one b frame lasts 400 ms, longer than a 300 ms threshold.
    times = FrameTimes(np.array([0.0, 0.2, 0.4, 0.8, 1.0, 1.2]), 1.4)
    labels = _labels("aabaaa")
    assert _text(smooth(labels, times, [0.3] * 4)) == "aabaaa"
    assert _text(smooth(labels, times, [0.45] * 4)) == "aaaaaa"


def test_runs_are_maximal() -> None:
    assert runs(_labels("aabbbac")) == [(0, 0, 1), (1, 2, 4), (0, 5, 5), (2, 6, 6)]
    assert runs(np.array([], dtype=np.int64)) == []


def _probabilities(labels: np.ndarray, confidence: float = 0.7) -> np.ndarray:
    rows = np.full((len(labels), len(NAMES)), (1 - confidence) / (len(NAMES) - 1))
    rows[np.arange(len(labels)), labels] = confidence
    return rows.astype(np.float32)


def test_bouts_cover_every_frame_once_and_end_where_the_next_begins() -> None:
    labels = _labels("aaabbc")
    times = FrameTimes(np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.6]), 0.75)
    bouts = bouts_of(labels, NAMES, times, _probabilities(labels))
    assert [(b.label, b.start_frame, b.end_frame, b.frames) for b in bouts] == [
        ("a", 0, 2, 3),
        ("b", 3, 4, 2),
        ("c", 5, 5, 1),
    ]
    assert [(b.start_s, b.end_s) for b in bouts] == [(0.0, 0.3), (0.3, 0.6), (0.6, 0.75)]
    assert sum(b.frames for b in bouts) == len(labels)
    assert bouts[0].mean_confidence == pytest.approx(0.7)


def test_the_time_budget_has_every_label_and_adds_up_to_the_duration() -> None:
    labels = _labels("aaabbaaacc")
    times = FrameTimes.regular(10, fps=10)
    bouts = bouts_of(labels, NAMES, times, _probabilities(labels))
    budget = {row.label: row for row in time_budget(bouts, NAMES, times.duration_s)}
    assert list(budget) == list(NAMES)
    a, b, c, d = budget["a"], budget["b"], budget["c"], budget["d"]
    assert (a.bouts, a.frames) == (2, 6)
    assert a.total_s == pytest.approx(0.6)
    assert a.percent == pytest.approx(60.0)
    assert a.mean_bout_s == pytest.approx(0.3)
    assert a.median_bout_s == pytest.approx(0.3)
    assert a.first_onset_s == 0.0
    assert b.first_onset_s == pytest.approx(0.3)
    assert c.total_s == pytest.approx(0.2)
    assert (d.bouts, d.frames, d.total_s, d.percent, d.first_onset_s) == (0, 0, 0.0, 0.0, None)
    assert sum(row.total_s for row in budget.values()) == pytest.approx(times.duration_s)
    assert sum(row.percent for row in budget.values()) == pytest.approx(100.0)


def test_transitions_count_bout_to_bout_changes() -> None:
    labels = _labels("aabaacab")
    times = FrameTimes.regular(len(labels), fps=10)
    counts = transitions(bouts_of(labels, NAMES, times, _probabilities(labels)), NAMES)
    # Bouts: a b a c a b
    assert counts == [
        [0, 2, 1, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
    ]


def test_binned_budgets_split_bouts_at_bin_edges() -> None:
    labels = _labels("aaaaabbbbbbbcc")  # 1.4 s at 10 fps; bins of 0.5 s: 0.5, 0.5, 0.4
    times = FrameTimes.regular(len(labels), fps=10)
    bouts = bouts_of(labels, NAMES, times, _probabilities(labels))
    rows = binned_budget(bouts, NAMES, times, 0.5)
    assert len(rows) == 3 * len(NAMES)
    by_key = {(row.bin, row.label): row for row in rows}
    assert by_key[(0, "a")].total_s == pytest.approx(0.5)
    assert by_key[(1, "b")].total_s == pytest.approx(0.5)
    assert by_key[(2, "b")].total_s == pytest.approx(0.2)
    assert by_key[(2, "c")].total_s == pytest.approx(0.2)
    assert by_key[(2, "c")].percent == pytest.approx(50.0)
    assert (by_key[(1, "b")].bouts, by_key[(2, "b")].bouts) == (1, 0)  # counted where it starts
    assert (by_key[(1, "b")].frames, by_key[(2, "b")].frames) == (5, 2)
    assert by_key[(2, "b")].start_s == 1.0
    assert by_key[(2, "b")].end_s == pytest.approx(1.4)
    for number in range(3):
        in_bin = [row for row in rows if row.bin == number]
        assert sum(row.percent for row in in_bin) == pytest.approx(100.0)
