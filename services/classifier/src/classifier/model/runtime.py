"""The loaded model: an onnxruntime session checked against its manifest, warmed up before use."""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from classifier.core.arrays import FloatArray
from classifier.core.errors import ManifestError, ModelLoadError
from classifier.model.manifest import Manifest, load_manifest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_graph(manifest: Manifest, session: ort.InferenceSession) -> None:
    spec = manifest.input
    inputs = {node.name: node for node in session.get_inputs()}
    if spec.name not in inputs:
        raise ModelLoadError(
            f"manifest input {spec.name!r} is not a graph input (graph has {sorted(inputs)})"
        )
    if len(inputs) != 1:
        raise ModelLoadError(f"graph has {len(inputs)} inputs; exactly one is supported")
    node = inputs[spec.name]
    if node.type != "tensor(float)":
        raise ModelLoadError(f"graph input {spec.name!r} is {node.type}, manifest says float32")
    dims = list(node.shape)
    if len(dims) != 5:
        raise ModelLoadError(f"graph input {spec.name!r} has rank {len(dims)}, expected 5")
    for axis, (got, want) in enumerate(zip(dims[1:], spec.shape, strict=True), start=1):
        # A symbolic (str) or unknown (None) dim accepts whatever the manifest says.
        if isinstance(got, int) and got != want:
            raise ModelLoadError(
                f"graph input {spec.name!r} axis {axis} is {got}, "
                f"manifest ({spec.layout}) says {want}"
            )
    outputs = {node.name: node for node in session.get_outputs()}
    if manifest.output.name not in outputs:
        raise ModelLoadError(
            f"manifest output {manifest.output.name!r} is not a graph output "
            f"(graph has {sorted(outputs)})"
        )
    out_dims = list(outputs[manifest.output.name].shape)
    if len(out_dims) != 2:
        raise ModelLoadError(
            f"graph output {manifest.output.name!r} has rank {len(out_dims)}, expected 2"
        )
    if isinstance(out_dims[1], int) and out_dims[1] != len(manifest.labels):
        raise ModelLoadError(
            f"graph output {manifest.output.name!r} has {out_dims[1]} classes, "
            f"manifest lists {len(manifest.labels)} labels"
        )


def softmax(scores: FloatArray) -> FloatArray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=-1, keepdims=True)
    return result


@dataclass(frozen=True, slots=True)
class SequenceModel:
    """One servable model. ``run`` and ``probabilities_for`` are thread-safe (onnxruntime sessions
    are); the inference engine (``model/engine.py``) is how requests reach them."""

    manifest: Manifest
    session: ort.InferenceSession
    #: Median time of one sequence, measured by warm_up(); 0 until then.
    seconds_per_sequence: float = 0.0

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def run(self, batch: FloatArray) -> FloatArray:
        """Raw graph output (logits or probabilities, as the manifest says) for a batch."""
        outputs = self.session.run([self.manifest.output.name], {self.manifest.input.name: batch})
        scores: FloatArray = np.asarray(outputs[0], dtype=np.float32)
        return scores

    def probabilities_from_scores(self, scores: FloatArray) -> FloatArray:
        """Class probabilities from the graph's raw output."""
        return softmax(scores) if self.manifest.output.kind == "logits" else scores

    def probabilities_for(self, batch: FloatArray) -> FloatArray:
        """Class probabilities, shape ``[N, labels]``, for a batch shaped as the manifest says."""
        return self.probabilities_from_scores(self.run(batch))

    def warm_up(self, runs: int = 5) -> float:
        """Infer a blank sequence a few times, so the first request pays no set-up cost, check
        the output, and return the median seconds one sequence took."""
        blank = np.zeros((1, *self.manifest.input.shape), dtype=np.float32)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            probabilities = self.probabilities_for(blank)
            timings.append(time.perf_counter() - started)
        if probabilities.shape != (1, len(self.manifest.labels)):
            raise ModelLoadError(
                f"warm-up output has shape {probabilities.shape}, "
                f"expected (1, {len(self.manifest.labels)})"
            )
        if not np.all(np.isfinite(probabilities)):
            raise ModelLoadError("warm-up output is not finite")
        return statistics.median(timings)


def load_model(model_dir: Path, *, intra_op_threads: int = 1) -> SequenceModel:
    """Load, verify and warm up the model in ``model_dir``; raise ModelLoadError on any mismatch."""
    try:
        manifest = load_manifest(model_dir)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None
    path = model_dir / manifest.file
    if not path.is_file():
        raise ModelLoadError(f"model file {path} named by the manifest does not exist")
    digest = _file_sha256(path)
    if digest != manifest.sha256:
        raise ModelLoadError(
            f"model file {path} has sha256 {digest}, manifest says {manifest.sha256}"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own assorted types for corrupt graphs
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load ONNX model {path}: {first_line}") from None
    _check_graph(manifest, session)
    model = SequenceModel(manifest=manifest, session=session)
    try:
        seconds = model.warm_up()
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"warm-up inference failed: {type(exc).__name__}: {exc}") from None
    return dataclasses.replace(model, seconds_per_sequence=seconds)
