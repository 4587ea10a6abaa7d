"""Fixtures of the recording tests: the bundled model and one short generated H.264 recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from behaviour_clips import generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.model.runtime import SequenceModel, load_model
from tests.recordings.media import encode_video

#: A recording seed no other test uses, long enough for several bouts at 30 fps.
SHORT_SEED = 11
SHORT_FRAMES = 360


@pytest.fixture(scope="session")
def bundled_model() -> SequenceModel:
    return load_model(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="session")
def short_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[str]]:
    """(an H.264 MP4 of generated recording SHORT_SEED, its frames, its true labels)."""
    frames, labels = generate_recording(SHORT_SEED, SHORT_FRAMES, size=64)
    path = encode_video(tmp_path_factory.mktemp("video") / "cage.mp4", frames)
    return path, frames, labels


#: Long enough to be cut into stretches (recordings/parallel.py: 2 x 1,024 frames or more).
LONG_SEED = 12
LONG_FRAMES = 3000


@pytest.fixture(scope="session")
def long_recording() -> tuple[np.ndarray, list[str]]:
    """(the frames of generated recording LONG_SEED, 100 s at 30 fps, and its true labels)."""
    return generate_recording(LONG_SEED, LONG_FRAMES, size=64)


@pytest.fixture(scope="session")
def keyframed(
    long_recording: tuple[np.ndarray, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """long_recording as H.264 with B-frames (libx264's default), a keyframe at least every 3 s."""
    path = tmp_path_factory.mktemp("long") / "cage.mp4"
    return encode_video(path, long_recording[0], x264_params="keyint=90")
