"""Long recordings: behaviour bouts chained by a Markov chain, with a label for every frame."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import numpy as np
import pytest

from behaviour_clips import LABELS, generate_recording
from behaviour_clips.behaviours import place_for
from behaviour_clips.pose import skeleton
from behaviour_clips.recording import BOUT_FRAMES, TRANSITIONS, bout_schedule, plan_recording


def _runs(labels: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    return runs


def test_recording_has_a_label_per_frame_and_is_deterministic() -> None:
    frames, labels = generate_recording(1, 900)
    assert frames.shape == (900, 64, 64)
    assert frames.dtype == np.uint8
    assert len(labels) == 900
    assert set(labels) <= set(LABELS)
    again_frames, again_labels = generate_recording(1, 900)
    assert np.array_equal(frames, again_frames)
    assert labels == again_labels
    other_frames, _ = generate_recording(2, 900)
    assert not np.array_equal(frames, other_frames)


def test_labels_come_in_bouts_of_realistic_length() -> None:
    _, labels = generate_recording(4, 3000)
    runs = _runs(labels)
    assert len(runs) > 3
    for label, length in runs[1:-1]:
        _, shortest, longest = BOUT_FRAMES[label]
        assert shortest <= length <= longest


def test_schedule_follows_the_transition_table() -> None:
    schedule = bout_schedule(np.random.default_rng(7), 1_000_000)
    assert sum(length for _, length in schedule) == 1_000_000
    for (previous, _), (following, _) in pairwise(schedule):
        assert following != previous
        assert following in TRANSITIONS[previous]
    assert {label for label, _ in schedule} == set(LABELS)


def test_bout_lengths_centre_on_their_medians() -> None:
    lengths: dict[str, list[int]] = defaultdict(list)
    for label, length in bout_schedule(np.random.default_rng(8), 1_000_000)[:-1]:
        lengths[label].append(length)
    for label, (median, shortest, longest) in BOUT_FRAMES.items():
        assert len(lengths[label]) >= 100
        assert float(np.median(lengths[label])) == pytest.approx(median, rel=0.15)
        assert min(lengths[label]) >= shortest
        assert max(lengths[label]) <= longest
    # Resting bouts are the longest, rearing and walking among the shortest.
    assert BOUT_FRAMES["rest"][0] > BOUT_FRAMES["eat"][0] > BOUT_FRAMES["walk"][0]


def test_eating_and_drinking_are_reached_by_walking_there() -> None:
    arrivals = 0
    walks_to_a_place = 0
    for seed in range(10):
        plan = plan_recording(seed, 20_000)
        for index in range(1, len(plan.schedule)):
            label = plan.schedule[index][0]
            if label not in ("eat", "drink"):
                continue
            assert plan.schedule[index - 1][0] == "walk"
            walk = skeleton(plan.poses[index - 1], plan.scene)
            place = place_for(label, plan.scene)
            assert place is not None
            start_gap = abs(float(walk.body_x[0]) - place)
            end_gap = abs(float(walk.body_x[-1]) - place)
            assert end_gap <= start_gap + 0.06  # never walks off elsewhere
            walks_to_a_place += 1
            arrivals += end_gap < 0.06
    assert walks_to_a_place > 50
    assert arrivals / walks_to_a_place > 0.9


def test_bouts_start_where_the_last_one_ended() -> None:
    plan = plan_recording(5, 20_000)
    bones = [skeleton(pose, plan.scene) for pose in plan.poses]
    jumps = [
        abs(float(after.body_x[0]) - float(before.body_x[-1])) for before, after in pairwise(bones)
    ]
    # Posture changes (standing up, curling) move the body centre a little; the mouse never
    # teleports across the cage.
    assert float(np.median(jumps)) < 0.05
    assert max(jumps) < 0.35


@pytest.mark.parametrize(("seed", "frames"), [(-1, 10), (1, 0)])
def test_bad_arguments_are_refused(seed: int, frames: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate_recording(seed, frames)
