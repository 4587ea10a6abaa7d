"""The optional per-frame sequence head (manifest `parts.sequence_head`): checked at start-up,
run in overlapping chunks that equal one whole run, and optional (window aggregation stays)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from behaviour_clips import generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.core.errors import ModelLoadError
from classifier.model.runtime import FrameLabeler, SequenceModel, load_model, softmax

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@pytest.fixture(scope="module")
def model() -> SequenceModel:
    return load_model(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def recording(model: SequenceModel) -> tuple[FloatArray, list[str]]:
    """Embeddings of a short generated recording (seed 7: a test seed) and its true labels."""
    pixels, labels = generate_recording(7, 2400)
    embeddings = model.encode_frames(pixels.astype(np.float32)[..., None] / np.float32(255.0))
    return embeddings, labels


def _copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The bundled model folder, copied, with its manifest edited."""
    target = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    manifest = json.loads((target / "manifest.json").read_text())
    edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_the_bundled_model_declares_a_sequence_head(model: SequenceModel) -> None:
    assert model.has_sequence_head
    assert model.manifest.parts is not None
    head = model.manifest.parts.sequence_head
    assert head is not None
    assert (head.file, head.input, head.output, head.kind) == (
        "sequence_head.onnx",
        "embeddings",
        "logits",
        "logits",
    )
    assert head.context_frames == 254  # 2 stages x (1 + 2 + ... + 64)
    session = ort.InferenceSession(str(DEFAULT_MODEL_DIR / head.file))
    assert [(node.name, node.shape[0], node.shape[2]) for node in session.get_inputs()] == [
        ("embeddings", 1, 64)
    ]
    assert isinstance(session.get_inputs()[0].shape[1], str)  # the length axis is dynamic
    assert (DEFAULT_MODEL_DIR / head.file).stat().st_size < 1024 * 1024


def test_chunked_labelling_equals_one_whole_run(
    model: SequenceModel, recording: tuple[FloatArray, list[str]]
) -> None:
    embeddings, _ = recording
    assert model.parts is not None
    assert model.parts.sequence is not None
    (whole_logits,) = model.parts.sequence.run(["logits"], {"embeddings": embeddings[None]})
    whole = softmax(np.asarray(whole_logits[0], np.float32))

    for chunk in (len(embeddings) + 10, 700, 97, 1):
        chunked = model.label_frames(embeddings, chunk_frames=chunk)
        assert chunked.shape == (2400, 8)
        np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=0)
    assert len(np.unique(whole.argmax(axis=1))) >= 3  # not a constant answer


def test_a_stream_pushed_in_uneven_pieces_gives_the_same_probabilities(
    model: SequenceModel, recording: tuple[FloatArray, list[str]]
) -> None:
    embeddings, _ = recording
    labeler = FrameLabeler(model, chunk_frames=300)
    pieces, start = [], 0
    for size in (1, 23, 500, 7, 1000, 300, 569):
        pieces.append(labeler.push(embeddings[start : start + size]))
        start += size
        # Frames come out only once their right-hand context has arrived.
        assert labeler.done <= max(0, start - labeler.context)
    pieces.append(labeler.finish())
    assert start == 2400

    np.testing.assert_allclose(
        np.concatenate(pieces), model.label_frames(embeddings, chunk_frames=5000), atol=1e-5
    )


def test_the_head_labels_a_generated_recording_like_the_generator(
    model: SequenceModel, recording: tuple[FloatArray, list[str]]
) -> None:
    embeddings, truth = recording
    labels = np.asarray(model.manifest.labels)[model.label_frames(embeddings).argmax(axis=1)]

    # A bound for a short test recording; the published figures are make evaluate's.
    assert float(np.mean(labels == np.asarray(truth))) >= 0.9


def test_a_model_without_a_sequence_head_still_loads(tmp_path: Path) -> None:
    def drop(manifest: dict[str, Any]) -> None:
        del manifest["parts"]["sequence_head"]

    model = load_model(_copy(tmp_path, drop))

    assert model.has_parts
    assert not model.has_sequence_head
    with pytest.raises(RuntimeError, match="no sequence head"):
        model.label_frames(np.zeros((30, 64), np.float32))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sha256", "0" * 64, r"sequence_head file .* has sha256 [0-9a-f]{64}, manifest says 0000"),
        ("input", "frames", r"sequence_head input 'frames' is not the graph's one input"),
        ("output", "scores", r"sequence_head output 'scores' is not a graph output"),
        ("file", "missing.onnx", r"sequence_head file .*missing.onnx .* does not exist"),
    ],
)
def test_a_sequence_head_that_does_not_fit_stops_start_up_with_one_line(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["parts"]["sequence_head"][field] = value

    with pytest.raises(ModelLoadError, match=message) as caught:
        load_model(_copy(tmp_path, edit))
    assert "\n" not in str(caught.value)


def _linear_head(path: Path, embedding: int, labels: int) -> str:
    """A per-frame linear head `[1, L, embedding]` -> `[1, L, labels]`; returns its sha256."""
    weights = numpy_helper.from_array(np.ones((embedding, labels), np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["embeddings", "weights"], ["logits"])],
        "linear_head",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "L", embedding])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "L", labels])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("embedding", "labels", "message"),
    [
        (64, 7, r"sequence_head output 'logits' axis 2 is 7, expected 8 \(labels\)"),
        (32, 8, r"sequence_head input 'embeddings' axis 2 is 32, expected 64 \(embedding_size\)"),
    ],
)
def test_a_sequence_head_of_another_shape_is_refused(
    tmp_path: Path, embedding: int, labels: int, message: str
) -> None:
    folder = _copy(tmp_path, lambda manifest: None)
    digest = _linear_head(folder / "other_head.onnx", embedding, labels)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["parts"]["sequence_head"].update(file="other_head.onnx", sha256=digest)
    (folder / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ModelLoadError, match=message) as caught:
        load_model(folder)
    assert "\n" not in str(caught.value)


def test_a_linear_head_of_the_right_shape_is_accepted_and_labels_every_frame(
    tmp_path: Path,
) -> None:
    folder = _copy(tmp_path, lambda manifest: None)
    digest = _linear_head(folder / "other_head.onnx", 64, 8)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["parts"]["sequence_head"].update(
        file="other_head.onnx", sha256=digest, context_frames=0
    )
    (folder / "manifest.json").write_text(json.dumps(manifest))

    probabilities = load_model(folder).label_frames(np.ones((50, 64), np.float32), chunk_frames=7)

    np.testing.assert_allclose(probabilities, np.full((50, 8), 1 / 8), atol=1e-6)


def test_a_negative_context_is_an_invalid_manifest(tmp_path: Path) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["parts"]["sequence_head"]["context_frames"] = -1

    with pytest.raises(ModelLoadError, match=r"parts\.sequence_head\.context_frames"):
        load_model(_copy(tmp_path, edit))
