"""The synthetic clip generator: deterministic, well-formed, and each behaviour looks and moves
the way its description says."""

from __future__ import annotations

import numpy as np
import pytest

from behaviour_clips import LABELS, generate_clip
from behaviour_clips.behaviours import BEHAVIOURS, random_start
from behaviour_clips.pose import Pose, Skeleton, skeleton
from behaviour_clips.scene import Scene, sample_scene

SEEDS = range(12)


def test_labels_are_the_jhuang_classes_in_model_order() -> None:
    assert LABELS == (
        "drink",
        "eat",
        "groom",
        "hang",
        "micromovement",
        "rear",
        "rest",
        "walk",
    )


@pytest.mark.parametrize("label", LABELS)
def test_clip_shape_dtype_and_determinism(label: str) -> None:
    clip = generate_clip(label, 5)
    assert clip.shape == (24, 64, 64)
    assert clip.dtype == np.uint8
    assert np.array_equal(clip, generate_clip(label, 5))
    assert not np.array_equal(clip, generate_clip(label, 6))


def test_frames_and_size_are_honoured() -> None:
    clip = generate_clip("walk", 1, frames=10, size=96)
    assert clip.shape == (10, 96, 96)


def test_same_seed_same_cage_different_behaviour() -> None:
    # The first frame's top rows hold the lid and fixtures only; the mouse differs per label.
    walk, rest = generate_clip("walk", 3), generate_clip("rest", 3)
    assert not np.array_equal(walk, rest)
    assert abs(float(walk[:, :4].mean()) - float(rest[:, :4].mean())) < 2.0


def test_clips_use_the_dynamic_range_and_carry_noise() -> None:
    clip = generate_clip("walk", 2).astype(np.int16)
    assert clip.max() - clip.min() > 100
    # Sensor noise: consecutive frames never match exactly, even where nothing moves.
    assert np.all(np.any(clip[1:] != clip[:-1], axis=(1, 2)))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"label": "sleep", "seed": 1}, "unknown behaviour"),
        ({"label": "walk", "seed": -1}, "seed must be"),
        ({"label": "walk", "seed": 1, "frames": 0}, "frames must be"),
        ({"label": "walk", "seed": 1, "size": 8}, "size must be"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, int | str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_clip(**arguments)  # type: ignore[arg-type]


def test_clip_at_another_size_films_the_same_scene() -> None:
    small = generate_clip("rear", 4).astype(np.float32)
    large = generate_clip("rear", 4, size=128).astype(np.float32)
    shrunk = large.reshape(24, 64, 2, 64, 2).mean(axis=(2, 4))
    # Same cage and motion; only the noise and anti-aliasing differ.
    assert float(np.abs(small - shrunk).mean()) < 6.0


# --- behaviour signatures, measured on the poses the generator draws ----------------------------


def _bout(label: str, seed: int, frames: int = 24) -> tuple[Scene, Pose, Skeleton]:
    scene = sample_scene(np.random.default_rng([seed, 0]))
    rng = np.random.default_rng([seed, 1, LABELS.index(label)])
    pose = BEHAVIOURS[label](rng, scene, frames, random_start(rng, scene, label, frames))
    return scene, pose, skeleton(pose, scene)


def _travel(values: np.ndarray) -> float:
    return float(values.max() - values.min())


@pytest.mark.parametrize("seed", SEEDS)
def test_walk_travels_along_the_floor_with_a_gait(seed: int) -> None:
    scene, pose, bones = _bout("walk", seed)
    assert _travel(bones.body_x) > 0.2
    assert np.all(np.diff(bones.body_x) * pose.facing[1:] > 0)  # always forwards
    assert np.all(bones.body_y > scene.floor_y - 0.25)
    assert _travel(bones.paw_x - bones.chest_x) > 0.01  # legs swing
    # Placed so that the whole walk stays inside the cage walls.
    for x in (pose.hip_x, bones.nose_x):
        assert np.all((x > 0.02) & (x < 0.98))


@pytest.mark.parametrize("seed", SEEDS)
def test_rest_is_still_and_curled(seed: int) -> None:
    _, pose, bones = _bout("rest", seed)
    assert float(pose.curl.min()) >= 0.75
    assert _travel(bones.body_x) == 0.0
    assert _travel(bones.head_x) == 0.0
    assert 0.0 < _travel(bones.body_ry) < 0.02  # breathing only


@pytest.mark.parametrize("seed", SEEDS)
def test_micromovement_fidgets_in_place(seed: int) -> None:
    _, pose, bones = _bout("micromovement", seed)
    assert 0.0 < _travel(bones.body_x) < 0.06
    assert _travel(bones.nose_y) > 0.005
    assert float(pose.curl.max()) < 0.75


def _dominant_period(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal - signal.mean()))
    frequencies = np.fft.rfftfreq(len(signal))
    return float(1.0 / frequencies[1 + int(np.argmax(spectrum[1:]))])


@pytest.mark.parametrize("seed", SEEDS)
def test_groom_strokes_the_face_fast_while_the_body_stays(seed: int) -> None:
    _, pose, bones = _bout("groom", seed, frames=96)
    assert _travel(bones.body_x) == 0.0
    assert float(pose.paws_at_mouth.min()) == 1.0
    assert 2.0 <= _dominant_period(bones.paw_y) <= 4.0
    assert float(pose.elevation.min()) >= 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_rear_rises_upright_in_open_floor(seed: int) -> None:
    scene, pose, bones = _bout("rear", seed)
    # Every clip has finished rising by its last frame, wherever it caught the rise.
    assert float(pose.elevation[-1]) > 1.05
    assert float(bones.nose_y.min()) < scene.floor_y - 0.6 * scene.mouse_length
    # Clear of the hopper and the spout, so a rear is never an attempt to eat or drink.
    upright = pose.elevation > 0.8
    assert np.all(bones.nose_x[upright] > scene.hopper_x1 + 0.02)
    spout_distance = np.hypot(bones.nose_x - scene.spout_tip_x, bones.nose_y - scene.spout_tip_y)
    assert np.all(spout_distance > 0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_hang_stays_at_the_lid(seed: int) -> None:
    scene, pose, bones = _bout("hang", seed)
    top = np.minimum(np.minimum(bones.body_y - bones.body_ry, bones.head_y), bones.paw_y)
    assert np.all(top < scene.lid_y + 0.06)
    assert np.all(bones.body_y < scene.floor_y - 0.3)
    assert float(pose.tail_hanging.min()) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_eat_reaches_into_the_hopper_with_slow_chewing(seed: int) -> None:
    scene, pose, bones = _bout("eat", seed, frames=96)
    assert np.all((bones.nose_x > scene.hopper_x0) & (bones.nose_x < scene.hopper_x1))
    assert np.all(np.abs(bones.nose_y - scene.hopper_bottom_y) < 0.05)
    assert 4.5 <= _dominant_period(pose.head_pitch) <= 9.0
    assert _travel(pose.hip_x) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_drink_licks_at_the_spout(seed: int) -> None:
    scene, pose, bones = _bout("drink", seed, frames=96)
    assert np.all(
        np.hypot(bones.nose_x - scene.spout_tip_x, bones.nose_y - scene.spout_tip_y) < 0.05
    )
    assert 3.0 <= _dominant_period(pose.head_pitch) <= 5.5
    assert _travel(pose.hip_x) == 0.0
