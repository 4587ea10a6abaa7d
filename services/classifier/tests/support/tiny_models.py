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
