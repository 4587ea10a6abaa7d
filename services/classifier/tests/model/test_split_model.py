"""The bundled model's frame encoder and temporal head: committed beside the whole-clip graph,
described by the manifest, and giving the whole graph's probabilities on a recording's windows."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from behaviour_clips import generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR as MODEL_DIR
from classifier.model.runtime import PARTS_TOLERANCE, SequenceModel, load_model

MIB = 1024 * 1024
PARTS = ("frame_encoder", "temporal_head", "sequence_head")


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        dim.dim_param if dim.HasField("dim_param") else dim.dim_value
        for dim in value.type.tensor_type.shape.dim
    ]


@pytest.fixture(scope="module")
def model() -> SequenceModel:
    return load_model(MODEL_DIR)


@pytest.mark.parametrize("role", PARTS)
def test_part_files_are_small_hashed_and_clean(manifest: dict[str, Any], role: str) -> None:
    part = manifest["parts"][role]
    path = MODEL_DIR / part["file"]
    raw = path.read_bytes()
    graph = onnx.load(str(path))

    assert path.stat().st_size <= MIB
    assert hashlib.sha256(raw).hexdigest() == part["sha256"]
    onnx.checker.check_model(graph, full_check=True)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    assert not any(node.metadata_props for node in graph.graph.node)
    assert b'File "' not in raw
    assert b"site-packages" not in raw
    opset = max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx"))
    assert opset == manifest["provenance"]["opset"]


def test_parts_tensors_match_the_manifest(manifest: dict[str, Any]) -> None:
    encoder_spec, head_spec = manifest["parts"]["frame_encoder"], manifest["parts"]["temporal_head"]
    encoder = onnx.load(str(MODEL_DIR / encoder_spec["file"])).graph
    head = onnx.load(str(MODEL_DIR / head_spec["file"])).graph

    assert encoder_spec == {
        "file": "frame_encoder.onnx",
        "sha256": encoder_spec["sha256"],
        "input": "frames",
        "output": "embeddings",
        "embedding_size": 64,
    }
    assert [(v.name, _dims(v)) for v in encoder.input] == [("frames", ["frames", 64, 64, 1])]
    assert [(v.name, _dims(v)) for v in encoder.output] == [("embeddings", ["frames", 64])]
    assert head_spec["input"] == "embeddings"
    assert head_spec["output"] == "logits"
    assert [(v.name, _dims(v)) for v in head.input] == [("embeddings", ["windows", 24, 64])]
    assert [(v.name, _dims(v)) for v in head.output] == [("logits", ["windows", 8])]


def test_the_bundled_model_loads_with_its_parts(model: SequenceModel) -> None:
    assert model.has_parts
    assert model.manifest.parts is not None
    assert model.manifest.parts.frame_encoder.embedding_size == 64


@pytest.mark.parametrize(("seed", "frames"), [(3, 700), (11, 500)])
def test_split_path_equals_the_whole_clip_graph_on_every_window(
    model: SequenceModel, seed: int, frames: int
) -> None:
    """Every stride-1 window of a generated recording: each frame encoded once, the head run on
    batches of windows, against the whole-clip graph on the same windows."""
    pixels, _ = generate_recording(seed, frames)
    tensor = pixels.astype(np.float32)[..., None] / np.float32(255.0)
    length = model.manifest.input.frames
    windows = sliding_window_view(tensor, length, axis=0).transpose(0, 4, 1, 2, 3)
    embeddings = model.encode_frames(tensor)
    embedding_windows = sliding_window_view(embeddings, length, axis=0).transpose(0, 2, 1)
    assert windows.shape == (frames - length + 1, length, 64, 64, 1)
    assert embedding_windows.shape == (frames - length + 1, length, 64)

    whole, split = [], []
    for first in range(0, len(windows), 256):
        whole.append(model.probabilities_for(np.ascontiguousarray(windows[first : first + 256])))
        split.append(
            model.classify_windows(np.ascontiguousarray(embedding_windows[first : first + 256]))
        )
    expected, got = np.concatenate(whole), np.concatenate(split)

    assert got.shape == expected.shape == (frames - length + 1, 8)
    np.testing.assert_allclose(got, expected, atol=PARTS_TOLERANCE, rtol=0)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    # Distinct windows get distinct answers: the comparison is not between constant outputs.
    assert len(np.unique(expected.argmax(axis=1))) >= 2


def test_embeddings_do_not_depend_on_the_batch(model: SequenceModel) -> None:
    pixels, _ = generate_recording(5, 40)
    tensor = pixels.astype(np.float32)[..., None] / np.float32(255.0)
    together = model.encode_frames(tensor)
    one_by_one = np.concatenate([model.encode_frames(tensor[i : i + 1]) for i in range(40)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5, rtol=0)


def test_parts_are_where_the_manifest_says(manifest: dict[str, Any]) -> None:
    files = sorted(path.name for path in Path(MODEL_DIR).iterdir())
    assert files == sorted(
        ["manifest.json", manifest["file"], *(manifest["parts"][p]["file"] for p in PARTS)]
    )
