"""The split model: a frame encoder and a temporal head declared in the manifest, checked at
start-up against each other and against the whole-clip graph; models without them still serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.core.config import Settings
from classifier.core.errors import ModelLoadError
from classifier.main import create_app
from classifier.model.runtime import PARTS_TOLERANCE, load_model
from tests.support.app_client import lifespan_client
from tests.support.frames import files, sequence
from tests.support.tiny_models import (
    brightness_frame_encoder,
    brightness_temporal_head,
    write_model_dir,
    write_parts,
)


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    return write_parts(write_model_dir(tmp_path / "split"))


def _windows(values: list[float], frames: int = 24) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One window per value; the frames of a window step from darker to brighter around it."""
    ramp = np.linspace(-0.1, 0.1, frames, dtype=np.float32)
    windows = np.empty((len(values), frames, 64, 64, 1), dtype=np.float32)
    for index, value in enumerate(values):
        windows[index] = np.clip(value + ramp, 0, 1)[:, None, None, None]
    return windows


def test_a_model_with_parts_encodes_frames_once_and_classifies_windows(split_dir: Path) -> None:
    model = load_model(split_dir)
    windows = _windows([0.0, 0.3, 0.7, 1.0])

    embeddings = model.encode_frames(windows.reshape(-1, 64, 64, 1))
    probabilities = model.classify_windows(embeddings.reshape(4, 24, 1))

    assert model.has_parts
    assert embeddings.shape == (96, 1)
    # Every frame is uniform, so its mean is any one pixel (up to float32 summation).
    np.testing.assert_allclose(embeddings[:, 0], windows[:, :, 0, 0, 0].ravel(), atol=1e-5)
    assert probabilities.shape == (4, 4)
    assert list(probabilities.argmax(axis=1)) == [0, 1, 2, 3]
    # The whole graph sums 98,304 float32 pixels at once: the paths differ by ~3e-5 here.
    np.testing.assert_allclose(
        probabilities, model.probabilities_for(windows), atol=PARTS_TOLERANCE, rtol=0
    )


def test_a_model_without_parts_loads_and_refuses_the_split_path(model_dir: Path) -> None:
    model = load_model(model_dir)

    assert not model.has_parts
    assert model.manifest.parts is None
    assert list(model.probabilities_for(_windows([1.0])).argmax(axis=1)) == [3]
    with pytest.raises(RuntimeError, match="'brightness' ships no frame encoder"):
        model.encode_frames(np.zeros((1, 64, 64, 1), dtype=np.float32))
    with pytest.raises(RuntimeError, match="use its whole-clip graph"):
        model.classify_windows(np.zeros((1, 24, 1), dtype=np.float32))


@pytest.mark.parametrize("with_parts", [False, True])
async def test_clip_endpoints_serve_models_with_and_without_parts(
    tmp_path: Path, with_parts: bool
) -> None:
    directory = write_model_dir(tmp_path / "m")
    if with_parts:
        write_parts(directory)
    settings = Settings(model_dir=directory, fluentd_host=None, access_log_stdout=False)

    async with lifespan_client(create_app(settings)) as client:
        response = await client.post(
            "/v1/models/brightness/classify", files=files("frames", sequence(170))
        )

    assert response.status_code == 200
    assert response.json()["label"] == "mid"


def _edit_parts(directory: Path, role: str, **changes: object) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parts"][role].update(changes)
    path.write_text(json.dumps(manifest))


def test_a_missing_part_file_is_named(split_dir: Path) -> None:
    (split_dir / "temporal_head.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"temporal_head file .*temporal_head\.onnx named by"):
        load_model(split_dir)


def test_a_part_with_another_sha256_is_refused(split_dir: Path) -> None:
    _edit_parts(split_dir, "frame_encoder", sha256="0" * 64)
    with pytest.raises(ModelLoadError, match=r"frame_encoder file .* manifest says 0000"):
        load_model(split_dir)


def test_a_manifest_with_half_the_parts_is_invalid(split_dir: Path) -> None:
    path = split_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["parts"]["temporal_head"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"parts\.temporal_head: Field required"):
        load_model(split_dir)


@pytest.mark.parametrize(
    ("parts", "overrides", "message"),
    [
        (
            {},
            {"frame_encoder": {"embedding_size": 2}},
            r"frame_encoder output 'embeddings' axis 1 is 1, expected 2 "
            r"\(frame_encoder\.embedding_size\)",
        ),
        (
            {"head": brightness_temporal_head(embedding_size=2)},
            {},
            r"temporal_head input 'embeddings' axis 2 is 2, expected 1 "
            r"\(frame_encoder\.embedding_size\)",
        ),
        (
            {"head": brightness_temporal_head(frames=16)},
            {},
            r"temporal_head input 'embeddings' axis 1 is 16, expected 24 \(input\.frames\)",
        ),
        (
            {"head": brightness_temporal_head(labels=3)},
            {},
            r"temporal_head output 'logits' axis 1 is 3, expected 4 \(the manifest's labels\)",
        ),
        (
            {"encoder": brightness_frame_encoder(height=32)},
            {},
            r"frame_encoder input 'frames' axis 1 is 32, expected 64 \(input\.frame_shape\)",
        ),
        (
            {},
            {"frame_encoder": {"input": "pixels"}},
            r"frame_encoder input 'pixels' is not the graph's one input \(graph has \['frames'\]\)",
        ),
        (
            {},
            {"temporal_head": {"output": "scores"}},
            r"temporal_head output 'scores' is not a graph output",
        ),
        (
            {"head": brightness_temporal_head(scale=-10.0)},
            {},
            r"frame_encoder \+ temporal_head disagree with model\.onnx: class probabilities "
            r"differ by up to 0\.\d+ on a test window \(tolerance 0\.0001\)",
        ),
    ],
)
def test_parts_that_do_not_fit_stop_start_up_with_one_line(
    tmp_path: Path,
    parts: dict[str, Any],
    overrides: dict[str, dict[str, Any]],
    message: str,
) -> None:
    directory = write_parts(
        write_model_dir(tmp_path / "m"),
        encoder=parts.get("encoder"),
        head=parts.get("head"),
        **overrides,
    )
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(directory)
    assert "\n" not in str(info.value)
