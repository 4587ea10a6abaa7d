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
from classifier.model.manifest import (
    Manifest,
    ModelPart,
    ModelParts,
    SequenceHeadPart,
    load_manifest,
)

PARTS_TOLERANCE = 1e-4
"""Largest difference in a class probability allowed between the split and whole-clip paths."""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_session(path: Path, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own assorted types for corrupt graphs
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load ONNX model {path}: {first_line}") from None


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


def _check_dims(graph: str, dims: list[object], want: list[tuple[int, str]]) -> None:
    """Rank and fixed axes of a graph tensor (the batch axis free); `want` gives each later
    axis's size and where it comes from, for the message (size 0: any)."""
    if len(dims) != len(want) + 1:
        raise ModelLoadError(f"{graph} has rank {len(dims)}, expected {len(want) + 1}")
    for axis, (got, (size, source)) in enumerate(zip(dims[1:], want, strict=True), start=1):
        if size and isinstance(got, int) and got != size:
            raise ModelLoadError(f"{graph} axis {axis} is {got}, expected {size} ({source})")


def _load_part(
    model_dir: Path, role: str, part: ModelPart, intra_op_threads: int
) -> tuple[ort.InferenceSession, list[object], list[object]]:
    """One part graph, hashed, opened and checked for its names; returns the session and the
    dims of its input and output."""
    path = model_dir / part.file
    if not path.is_file():
        raise ModelLoadError(f"{role} file {path} named by the manifest does not exist")
    digest = _file_sha256(path)
    if digest != part.sha256:
        raise ModelLoadError(f"{role} file {path} has sha256 {digest}, manifest says {part.sha256}")
    session = _open_session(path, intra_op_threads)
    inputs = {node.name: node for node in session.get_inputs()}
    if list(inputs) != [part.input]:
        raise ModelLoadError(
            f"{role} input {part.input!r} is not the graph's one input (graph has {sorted(inputs)})"
        )
    if inputs[part.input].type != "tensor(float)":
        raise ModelLoadError(f"{role} input {part.input!r} is {inputs[part.input].type}, not float")
    outputs = {node.name: node for node in session.get_outputs()}
    if part.output not in outputs:
        raise ModelLoadError(
            f"{role} output {part.output!r} is not a graph output (graph has {sorted(outputs)})"
        )
    return session, list(inputs[part.input].shape), list(outputs[part.output].shape)


def _load_parts(
    model_dir: Path, manifest: Manifest, whole: ort.InferenceSession, intra_op_threads: int
) -> ModelPartSessions | None:
    """The manifest's frame encoder and temporal head, checked against each other and, on test
    windows, against the whole-clip graph; None when the manifest declares no parts."""
    if manifest.parts is None:
        return None
    encoder_spec, head_spec = manifest.parts.frame_encoder, manifest.parts.temporal_head
    size = encoder_spec.embedding_size
    encoder, encoder_in, encoder_out = _load_part(
        model_dir, "frame_encoder", encoder_spec, intra_op_threads
    )
    frame_axes = [(dim, "input.frame_shape") for dim in manifest.input.frame_shape]
    _check_dims(f"frame_encoder input {encoder_spec.input!r}", encoder_in, frame_axes)
    embedding = [(size, "frame_encoder.embedding_size")]
    _check_dims(f"frame_encoder output {encoder_spec.output!r}", encoder_out, embedding)
    head, head_in, head_out = _load_part(model_dir, "temporal_head", head_spec, intra_op_threads)
    window_axes = [(manifest.input.frames, "input.frames"), *embedding]
    _check_dims(f"temporal_head input {head_spec.input!r}", head_in, window_axes)
    labels = [(len(manifest.labels), "the manifest's labels")]
    _check_dims(f"temporal_head output {head_spec.output!r}", head_out, labels)
    sequence = None
    if manifest.parts.sequence_head is not None:
        sequence = _load_sequence_head(
            model_dir, manifest.parts.sequence_head, size, len(manifest.labels), intra_op_threads
        )
    parts = ModelPartSessions(spec=manifest.parts, encoder=encoder, head=head, sequence=sequence)
    _check_parts_agree(manifest, whole, parts)
    return parts


def _load_sequence_head(
    model_dir: Path, spec: SequenceHeadPart, size: int, labels: int, intra_op_threads: int
) -> ort.InferenceSession:
    """The optional per-frame head: `[1, L, E]` -> `[1, L, labels]`, checked on a test run."""
    session, dims_in, dims_out = _load_part(model_dir, "sequence_head", spec, intra_op_threads)
    free = (0, "any length")
    _check_dims(f"sequence_head input {spec.input!r}", dims_in, [free, (size, "embedding_size")])
    _check_dims(f"sequence_head output {spec.output!r}", dims_out, [free, (labels, "labels")])
    length = 2 * spec.context_frames + 3
    probe = np.random.default_rng(0).random((1, length, size), dtype=np.float32)
    try:
        scores = np.asarray(session.run([spec.output], {spec.input: probe})[0])
    except Exception as exc:  # onnxruntime raises its own assorted types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"sequence_head failed on {length} test frames: {first_line}"
        ) from None
    if scores.shape != (1, length, labels) or not np.all(np.isfinite(scores)):
        raise ModelLoadError(
            f"sequence_head gives shape {scores.shape} (finite: {bool(np.isfinite(scores).all())}) "
            f"for {length} frames, expected (1, {length}, {labels})"
        )
    return session


def _check_parts_agree(
    manifest: Manifest, whole: ort.InferenceSession, parts: ModelPartSessions
) -> None:
    """Encoder then head must give the whole graph's probabilities on a blank window and on
    random ones (random pixels reach every weight); this also warms both parts up."""
    spec = manifest.input
    windows = np.random.default_rng(0).random((3, *spec.shape), dtype=np.float32)
    windows *= np.float32(1.0 if spec.scaling == "unit" else 255.0)
    windows[0] = 0.0
    try:
        expected = np.asarray(whole.run([manifest.output.name], {spec.name: windows})[0])
        embedded = parts.encode(windows.reshape(-1, *spec.frame_shape))
        split = parts.score(embedded.reshape(len(windows), spec.frames, -1))
    except Exception as exc:  # onnxruntime raises its own assorted types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model parts failed on a test window: {first_line}") from None
    if split.shape != expected.shape:
        raise ModelLoadError(
            f"temporal_head gives shape {split.shape} for 3 windows, {manifest.file} gives "
            f"{expected.shape}"
        )
    if manifest.output.kind == "logits":
        expected, split = softmax(expected), softmax(split)
    difference = float(np.abs(split - expected).max())
    if not difference <= PARTS_TOLERANCE:  # also catches NaN
        raise ModelLoadError(
            f"frame_encoder + temporal_head disagree with {manifest.file}: class probabilities "
            f"differ by up to {difference:.2g} on a test window (tolerance {PARTS_TOLERANCE:g})"
        )


def softmax(scores: FloatArray) -> FloatArray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=-1, keepdims=True)
    return result


@dataclass(frozen=True, slots=True)
class ModelPartSessions:
    """The split model's two onnxruntime sessions and the tensor names the manifest gives."""

    spec: ModelParts
    encoder: ort.InferenceSession
    head: ort.InferenceSession
    #: The per-frame sequence head, when the manifest declares one.
    sequence: ort.InferenceSession | None = None

    def encode(self, frames: FloatArray) -> FloatArray:
        part = self.spec.frame_encoder
        return np.asarray(self.encoder.run([part.output], {part.input: frames})[0], np.float32)

    def score(self, embeddings: FloatArray) -> FloatArray:
        part = self.spec.temporal_head
        return np.asarray(self.head.run([part.output], {part.input: embeddings})[0], np.float32)


class FrameLabeler:
    """Per-frame probabilities from a stream of embeddings, through the sequence head run on
    chunks that overlap by its ``context_frames`` on each side: each frame's result equals one
    run over the whole recording, while only a chunk and its context are held. ``push`` returns
    the probabilities of the frames that became final, ``finish`` those of the rest."""

    def __init__(self, model: SequenceModel, chunk_frames: int = 4096) -> None:
        parts = model.parts
        if parts is None or parts.sequence is None or parts.spec.sequence_head is None:
            raise RuntimeError(f"model {model.name!r} ships no sequence head")
        self._session, self._spec = parts.sequence, parts.spec.sequence_head
        self._size = parts.spec.frame_encoder.embedding_size
        self._labels = len(model.manifest.labels)
        self.chunk_frames = max(1, chunk_frames)
        self.context = self._spec.context_frames
        self._buffer = np.zeros((0, self._size), np.float32)
        self._buffer_start = 0  # recording index of the buffer's first embedding
        self.done = 0  # frames whose probabilities were returned

    @property
    def received(self) -> int:
        return self._buffer_start + len(self._buffer)

    def push(self, embeddings: FloatArray) -> FloatArray:
        if embeddings.ndim != 2 or embeddings.shape[1] != self._size:
            raise ValueError(f"embeddings of shape {embeddings.shape}, expected (n, {self._size})")
        self._buffer = np.concatenate([self._buffer, embeddings.astype(np.float32, copy=False)])
        ready = [np.zeros((0, self._labels), np.float32)]
        while self.received - self.done >= self.chunk_frames + self.context:
            ready.append(self._label(self.done + self.chunk_frames))
        return np.concatenate(ready)

    def finish(self) -> FloatArray:
        if self.received == self.done:
            return np.zeros((0, self._labels), np.float32)
        return self._label(self.received)

    def _label(self, end: int) -> FloatArray:
        """Frames done..end, from the embeddings ``context`` either side (as far as they go)."""
        first = max(0, self.done - self.context)
        last = min(self.received, end + self.context)
        window = self._buffer[first - self._buffer_start : last - self._buffer_start]
        scores = self._session.run([self._spec.output], {self._spec.input: window[None]})[0][0]
        scores = np.asarray(scores, np.float32)[self.done - first : end - first]
        self.done = end
        keep = max(0, self.done - self.context)
        self._buffer = self._buffer[keep - self._buffer_start :]
        self._buffer_start = keep
        result: FloatArray = softmax(scores) if self._spec.kind == "logits" else scores
        return result


@dataclass(frozen=True, slots=True)
class SequenceModel:
    """One servable model. ``run`` and ``probabilities_for`` are thread-safe (onnxruntime sessions
    are); the inference engine (``model/engine.py``) is how requests reach them."""

    manifest: Manifest
    session: ort.InferenceSession
    #: Median time of one sequence, measured by warm_up(); 0 until then.
    seconds_per_sequence: float = 0.0
    #: The frame encoder and temporal head, when the manifest declares them.
    parts: ModelPartSessions | None = None

    @property
    def has_parts(self) -> bool:
        """Whether frames can be encoded once and windows classified from their embeddings."""
        return self.parts is not None

    def encode_frames(self, frames: FloatArray) -> FloatArray:
        """Embeddings ``[N, E]`` of single frames ``[N, *input.frame_shape]``, scaled as for the
        whole graph. Only for a model with parts (``has_parts``)."""
        return self._require_parts().encode(frames)

    def classify_windows(self, embeddings: FloatArray) -> FloatArray:
        """Class probabilities ``[W, labels]`` of windows of embeddings ``[W, T, E]``, equal to
        the whole graph's on the same frames (within PARTS_TOLERANCE)."""
        return self.probabilities_from_scores(self._require_parts().score(embeddings))

    @property
    def has_sequence_head(self) -> bool:
        """Whether the model labels every frame itself (``label_frames``)."""
        return self.parts is not None and self.parts.sequence is not None

    def label_frames(self, embeddings: FloatArray, chunk_frames: int = 4096) -> FloatArray:
        """Per-frame probabilities ``[L, labels]`` of a recording's embeddings ``[L, E]``,
        run in chunks with the head's context overlapping (equal to one whole run)."""
        labeler = FrameLabeler(self, chunk_frames)
        head = labeler.push(embeddings)
        return np.concatenate([head, labeler.finish()])

    def _require_parts(self) -> ModelPartSessions:
        if self.parts is None:
            raise RuntimeError(
                f"model {self.manifest.name!r} ships no frame encoder and temporal head; "
                "use its whole-clip graph"
            )
        return self.parts

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
    session = _open_session(path, intra_op_threads)
    _check_graph(manifest, session)
    model = SequenceModel(manifest=manifest, session=session)
    try:
        seconds = model.warm_up()
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"warm-up inference failed: {type(exc).__name__}: {exc}") from None
    parts = _load_parts(model_dir, manifest, session, intra_op_threads)
    return dataclasses.replace(model, seconds_per_sequence=seconds, parts=parts)
