"""Small ONNX models built on the fly, with manifests, for tests that must not depend on the
trained default model: they make the expected answer computable by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LABELS = ("dark", "dim", "mid", "bright")


def mean_brightness_model(
    frames: int = 24, height: int = 64, width: int = 64, channels: int = 1, labels: int = 4
) -> onnx.ModelProto:
    """Logits that favour class ``round(mean_pixel * (labels - 1))``: brightness picks the class.

    input [N, T, H, W, C] float32 in [0, 1] -> mean over T, H, W, C -> [N, 1] -> logits [N, labels]
    with logit_k = -20 * (mean - k / (labels - 1))^2.
    """
    centres = np.array([k / (labels - 1) for k in range(labels)], dtype=np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["frames", "axes"], ["mean"], keepdims=1),
        helper.make_node("Reshape", ["mean", "flat_shape"], ["mean_2d"]),
        helper.make_node("Sub", ["mean_2d", "centres"], ["delta"]),
        helper.make_node("Mul", ["delta", "delta"], ["squared"]),
        helper.make_node("Mul", ["squared", "scale"], ["logits"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 2, 3, 4], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(centres.reshape(1, labels), "centres"),
        numpy_helper.from_array(np.array([-20.0], dtype=np.float32), "scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_brightness",
        [
            helper.make_tensor_value_info(
                "frames", TensorProto.FLOAT, ["batch", frames, height, width, channels]
            )
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def manifest_for(model_bytes: bytes, **overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": "brightness",
        "version": "0.0.1",
        "description": "Test model: the class is the mean brightness of the sequence.",
        "file": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "labels": list(LABELS),
        "input": {
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
        },
        "output": {"name": "logits", "kind": "logits"},
        "provenance": {"built_by": "tests/support/tiny_models.py"},
        "metrics": {},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    return manifest


def write_model_dir(
    directory: Path, model: onnx.ModelProto | None = None, **manifest_overrides: Any
) -> Path:
    """Write ``model.onnx`` and a matching ``manifest.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model_bytes = (model or mean_brightness_model()).SerializeToString()
    (directory / "model.onnx").write_bytes(model_bytes)
    manifest = manifest_for(model_bytes, **manifest_overrides)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return directory


def _checked(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def brightness_frame_encoder(
    height: int = 64, width: int = 64, channels: int = 1
) -> onnx.ModelProto:
    """The brightness model's first half: frames ``[N, H, W, C]`` -> embeddings ``[N, 1]``, each
    frame's mean pixel."""
    nodes = [
        helper.make_node("ReduceMean", ["frames", "axes"], ["mean"], keepdims=1),
        helper.make_node("Reshape", ["mean", "flat_shape"], ["embeddings"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "flat_shape"),
    ]
    frames = helper.make_tensor_value_info(
        "frames", TensorProto.FLOAT, ["frames", height, width, channels]
    )
    embeddings = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["frames", 1])
    return _checked(
        helper.make_graph(nodes, "brightness_encoder", [frames], [embeddings], initializers)
    )


def brightness_temporal_head(
    frames: int = 24, labels: int = 4, scale: float = -20.0, embedding_size: int = 1
) -> onnx.ModelProto:
    """The second half: windows ``[W, T, 1]`` -> the mean of their embeddings, scored as
    mean_brightness_model scores it. Another ``scale`` makes a head that disagrees with it."""
    centres = np.array([k / (labels - 1) for k in range(labels)], dtype=np.float32)
    nodes = [
        # Averaging every axis but the windows' also accepts a (wrongly) wider embedding.
        helper.make_node("ReduceMean", ["embeddings", "axes"], ["mean"], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "last"], ["mean_2d"]),
        helper.make_node("Sub", ["mean_2d", "centres"], ["delta"]),
        helper.make_node("Mul", ["delta", "delta"], ["squared"]),
        helper.make_node("Mul", ["squared", "scale"], ["logits"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "last"),
        numpy_helper.from_array(centres.reshape(1, labels), "centres"),
        numpy_helper.from_array(np.array([scale], dtype=np.float32), "scale"),
    ]
    windows = helper.make_tensor_value_info(
        "embeddings", TensorProto.FLOAT, ["windows", frames, embedding_size]
    )
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["windows", labels])
    return _checked(helper.make_graph(nodes, "brightness_head", [windows], [logits], initializers))


def write_parts(
    directory: Path,
    encoder: onnx.ModelProto | None = None,
    head: onnx.ModelProto | None = None,
    **part_overrides: dict[str, Any],
) -> Path:
    """Add ``frame_encoder.onnx``, ``temporal_head.onnx`` and the manifest's ``parts`` section
    to a folder made by write_model_dir; ``frame_encoder={...}`` etc. override entries."""
    files = {
        "frame_encoder": ("frame_encoder.onnx", encoder or brightness_frame_encoder()),
        "temporal_head": ("temporal_head.onnx", head or brightness_temporal_head()),
    }
    parts: dict[str, dict[str, Any]] = {}
    for role, (filename, graph) in files.items():
        data = graph.SerializeToString()
        (directory / filename).write_bytes(data)
        parts[role] = {
            "file": filename,
            "sha256": hashlib.sha256(data).hexdigest(),
            "input": graph.graph.input[0].name,
            "output": graph.graph.output[0].name,
        }
    parts["frame_encoder"]["embedding_size"] = 1
    for role, overrides in part_overrides.items():
        parts[role].update(overrides)
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["parts"] = parts
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return directory
