"""The committed model files: small, self-contained, and described truthfully by the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import onnx
import pytest

from behaviour_clips import LABELS, __version__

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def graph(model_path: Path) -> onnx.ModelProto:
    return onnx.load(str(model_path), load_external_data=False)


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        dim.dim_param if dim.HasField("dim_param") else dim.dim_value
        for dim in value.type.tensor_type.shape.dim
    ]


def test_model_file_is_small_and_hashed(manifest: dict[str, Any], model_path: Path) -> None:
    assert manifest["file"] == "model.onnx"
    assert model_path.stat().st_size <= 2 * MIB
    assert hashlib.sha256(model_path.read_bytes()).hexdigest() == manifest["sha256"]


def test_model_is_valid_and_self_contained(graph: onnx.ModelProto) -> None:
    onnx.checker.check_model(graph, full_check=True)
    for tensor in graph.graph.initializer:
        assert tensor.data_location != onnx.TensorProto.EXTERNAL, tensor.name


def test_model_carries_no_export_debug_notes(graph: onnx.ModelProto, model_path: Path) -> None:
    # The exporter annotates nodes with Python stack traces naming the build machine's paths.
    assert not any(node.metadata_props for node in graph.graph.node)
    raw = model_path.read_bytes()
    assert b'File "' not in raw
    assert b"site-packages" not in raw


def test_opset_is_17_or_newer(graph: onnx.ModelProto, manifest: dict[str, Any]) -> None:
    opset = max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx"))
    assert opset >= 17
    assert manifest["provenance"]["opset"] == opset


def test_graph_input_and_output_match_the_manifest(
    graph: onnx.ModelProto, manifest: dict[str, Any]
) -> None:
    spec = manifest["input"]
    (graph_input,) = graph.graph.input
    (graph_output,) = graph.graph.output
    assert graph_input.name == spec["name"] == "frames"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert spec["dtype"] == "float32"
    assert spec["layout"] == "NTHWC"
    assert _dims(graph_input) == [
        "batch",
        spec["frames"],
        spec["height"],
        spec["width"],
        spec["channels"],
    ]
    assert graph_output.name == manifest["output"]["name"] == "logits"
    assert _dims(graph_output) == ["batch", len(manifest["labels"])]


def test_manifest_describes_the_demonstration_model(manifest: dict[str, Any]) -> None:
    assert manifest["name"] == "rodent-behaviour"
    assert manifest["version"] == "1.0.0"
    assert "synthetic" in manifest["description"]
    assert "demonstration" in manifest["description"].lower()
    assert manifest["labels"] == list(LABELS)
    assert manifest["input"] == {
        "name": "frames",
        "layout": "NTHWC",
        "frames": 24,
        "height": 64,
        "width": 64,
        "channels": 1,
        "dtype": "float32",
        "scaling": "unit",
        "color_mode": "L",
        "resize_filter": "bilinear",
    }
    assert manifest["output"] == {"name": "logits", "kind": "logits"}
    provenance = manifest["provenance"]
    assert provenance["trained_by"] == "services/classifier/training/train.py"
    assert provenance["generator"] == f"behaviour_clips {__version__}"
    assert provenance["torch"] == "2.13.0"
    assert provenance["train_clips"] > 0
    assert provenance["epochs"] > 0
    assert set(manifest["metrics"]) == {
        "heldout_accuracy",
        "per_class_accuracy",
        "jpeg_q75_accuracy",
        "rgb128_resized_accuracy",
        "confusion_matrix",
        "heldout_clips",
    }
