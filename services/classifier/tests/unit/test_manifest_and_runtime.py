"""Loading a model: the manifest is checked against the graph, and every mismatch is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.core.errors import ModelLoadError
from classifier.model.manifest import load_manifest
from classifier.model.runtime import load_model, softmax
from tests.support.tiny_models import LABELS, mean_brightness_model, write_model_dir


def _edit_manifest(directory: Path, **changes: object) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_a_consistent_model_loads_and_predicts(model_dir: Path) -> None:
    model = load_model(model_dir)

    assert model.name == "brightness"
    assert model.manifest.labels == LABELS
    batch = np.full((3, 24, 64, 64, 1), 1.0, dtype=np.float32)
    batch[1] = 0.0
    probabilities = model.probabilities_for(batch)
    assert probabilities.shape == (3, 4)
    assert probabilities.sum(axis=1) == pytest.approx([1, 1, 1], abs=1e-6)
    assert list(probabilities.argmax(axis=1)) == [3, 0, 3]


def test_missing_folder_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model manifest at") as info:
        load_model(tmp_path / "absent")
    assert "\n" not in str(info.value)


def test_missing_onnx_file_fails(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(model_dir)


def test_sha256_mismatch_fails(model_dir: Path) -> None:
    _edit_manifest(model_dir, sha256="0" * 64)
    with pytest.raises(ModelLoadError, match=r"has sha256 [0-9a-f]{64}, manifest says 0000"):
        load_model(model_dir)


def test_corrupt_onnx_fails_with_one_line(tmp_path: Path) -> None:
    directory = write_model_dir(tmp_path / "m")
    corrupt = b"\x08\x07garbage" * 100
    (directory / "model.onnx").write_bytes(corrupt)
    import hashlib

    _edit_manifest(directory, sha256=hashlib.sha256(corrupt).hexdigest())
    with pytest.raises(ModelLoadError, match="cannot load ONNX model") as info:
        load_model(directory)
    assert "\n" not in str(info.value)


def test_unparsable_manifest_fails(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read model manifest"):
        load_model(model_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"labels": ["a", "b", "c"]}, "has 4 classes, manifest lists 3 labels"),
        ({"labels": ["a", "a", "b", "c"]}, "labels must be unique"),
        ({"input": {"name": "pixels"}}, "manifest input 'pixels' is not a graph input"),
        ({"input": {"frames": 16}}, "axis 1 is 24, manifest \\(NTHWC\\) says 16"),
        ({"input": {"height": 32}}, "axis 2 is 64"),
        ({"input": {"channels": 3, "color_mode": "RGB"}}, "axis 4 is 1"),
        ({"input": {"channels": 3}}, "color_mode L has 1 channel"),
        ({"output": {"name": "probs", "kind": "logits"}}, "manifest output 'probs'"),
        ({"input": {"scaling": "imagenet"}}, "input.scaling"),
    ],
)
def test_manifest_graph_mismatches_are_named(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    directory = write_model_dir(tmp_path / "m", mean_brightness_model(), **changes)
    with pytest.raises(ModelLoadError, match=message):
        load_model(directory)


def test_manifest_shape_follows_the_layout(model_dir: Path) -> None:
    manifest = load_manifest(model_dir)
    assert manifest.input.shape == (24, 64, 64, 1)
    channels_first = manifest.input.model_copy(update={"layout": "NTCHW"})
    assert channels_first.shape == (24, 1, 64, 64)


def test_softmax_is_stable_for_large_logits() -> None:
    result = softmax(np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32))
    assert result.tolist() == [[0.5, 0.5, 0.0]]
