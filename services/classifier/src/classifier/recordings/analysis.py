"""One recording, analysed: frames streamed through the model, then bouts and budgets.

Per-frame probabilities come from the model's sequence head when its manifest declares one
(frame_labels.py), else from the mean over sliding windows (windows.py). ``analyse_recording``
is what the jobs runner and the ``analyze`` command line call; it needs no HTTP and holds only
a batch of frames (plus a few floats per frame) in memory.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier import __version__
from classifier.core.errors import AnalysisCancelledError, InvalidAnalysisParametersError
from classifier.model.manifest import Manifest
from classifier.model.runtime import SequenceModel
from classifier.recordings.bouts import (
    BinBudget,
    Bout,
    FrameTimes,
    LabelBudget,
    binned_budget,
    bouts_of,
    smooth,
    time_budget,
    transitions,
)
from classifier.recordings.frame_labels import (
    METHODS,
    SEQUENCE_HEAD,
    WINDOW_MEAN,
    SequenceHeadLabeller,
    default_method,
)
from classifier.recordings.overlap import decoded_ahead
from classifier.recordings.parallel import (
    StretchesAbandonedError,
    encoded_in_stretches,
    plan_stretches,
)
from classifier.recordings.scoring import SplitScorer, WindowScorer, scorer_for
from classifier.recordings.source import FrameSource, RecordingInfo, Stretch, with_frames

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int, int | None], None]

#: Frames decoded between two progress reports and cancellation checks.
CHUNK_FRAMES = 256


@dataclass(frozen=True, slots=True)
class AnalysisParameters:
    """How a recording is analysed. ``min_bout_ms``: one threshold for every label, or a
    threshold per label (labels left out are not smoothed); None or 0: no smoothing."""

    stride: int = 1
    min_bout_ms: float | dict[str, float] | None = None
    bin_s: float | None = None

    def validate(self, manifest: Manifest) -> None:
        """Raise InvalidAnalysisParametersError unless these fit ``manifest``'s model."""
        window = manifest.input.frames
        if isinstance(self.stride, bool) or not isinstance(self.stride, int):
            raise InvalidAnalysisParametersError(f"stride must be an integer, got {self.stride!r}")
        if not 1 <= self.stride <= window:
            raise InvalidAnalysisParametersError(
                f"stride {self.stride} is outside 1..{window} (the model's window length)"
            )
        if isinstance(self.min_bout_ms, dict):
            unknown = sorted(set(self.min_bout_ms) - set(manifest.labels))
            if unknown:
                raise InvalidAnalysisParametersError(
                    f"min_bout_ms names unknown label(s) {', '.join(unknown)}; the model's "
                    f"labels are {', '.join(manifest.labels)}"
                )
            values: Iterable[tuple[str, object]] = self.min_bout_ms.items()
        elif self.min_bout_ms is None:
            values = ()
        else:
            values = (("min_bout_ms", self.min_bout_ms),)
        for name, value in values:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidAnalysisParametersError(
                    f"min_bout_ms for {name} must be a number of milliseconds >= 0, got {value!r}"
                )
        if self.bin_s is not None and (
            isinstance(self.bin_s, bool)
            or not isinstance(self.bin_s, int | float)
            or not math.isfinite(self.bin_s)
            or self.bin_s <= 0
        ):
            raise InvalidAnalysisParametersError(
                f"bin_s must be a number of seconds > 0, got {self.bin_s!r}"
            )

    def thresholds_s(self, labels: Sequence[str]) -> list[float]:
        """Each label's minimum bout length in seconds, in label order."""
        if self.min_bout_ms is None:
            return [0.0] * len(labels)
        if isinstance(self.min_bout_ms, dict):
            return [float(self.min_bout_ms.get(label, 0.0)) / 1000.0 for label in labels]
        return [float(self.min_bout_ms) / 1000.0] * len(labels)

    def to_dict(self) -> dict[str, Any]:
        min_bout = (
            dict(self.min_bout_ms) if isinstance(self.min_bout_ms, dict) else self.min_bout_ms
        )
        return {"stride": self.stride, "min_bout_ms": min_bout, "bin_s": self.bin_s}


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    name: str
    version: str
    sha256: str

    @classmethod
    def of(cls, model: SequenceModel) -> ModelIdentity:
        return cls(model.name, model.version, model.manifest.sha256)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a set of results came from; written into every export that can carry it."""

    input_sha256: str
    service_version: str
    model_name: str
    model_version: str
    model_sha256: str
    parameters: dict[str, Any]
    subject: str | None
    session: str | None
    metadata: dict[str, Any]
    source_filename: str
    created_at: str

    @classmethod
    def create(
        cls,
        *,
        input_sha256: str,
        model: SequenceModel | ModelIdentity,
        parameters: AnalysisParameters,
        source_filename: str,
        subject: str | None = None,
        session: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> Provenance:
        identity = model if isinstance(model, ModelIdentity) else ModelIdentity.of(model)
        recorded = (
            parameters.to_dict()
            if isinstance(model, ModelIdentity)
            else recorded_parameters(parameters, model)
        )
        return cls(
            input_sha256=input_sha256,
            service_version=__version__,
            model_name=identity.name,
            model_version=identity.version,
            model_sha256=identity.sha256,
            parameters=recorded,
            subject=subject,
            session=session,
            metadata=dict(metadata or {}),
            source_filename=source_filename,
            created_at=iso_utc(created_at or datetime.now(UTC)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_sha256": self.input_sha256,
            "service_version": self.service_version,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "parameters": self.parameters,
            "subject": self.subject,
            "session": self.session,
            "metadata": self.metadata,
            "source_filename": self.source_filename,
            "created_at": self.created_at,
        }


def recorded_parameters(parameters: AnalysisParameters, model: SequenceModel) -> dict[str, Any]:
    """The parameters as the provenance records them: the submitted ones, plus ``method``, how
    the model gave each frame its probabilities (``sequence_head`` or ``window_mean``)."""
    return {**parameters.to_dict(), "method": default_method(model)}


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the job documents write times."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sequence_sha256(frame_digests: Iterable[str]) -> str:
    """An image sequence's input hash: the sha256 of its frames' sha256 hex digests, one per
    line in frame order (so it changes with any frame's bytes or with their order)."""
    digest = hashlib.sha256()
    for frame_digest in frame_digests:
        digest.update(frame_digest.encode("ascii") + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class RecordingAnalysis:
    """Everything the exports need: per-frame probabilities and labels, bouts, budgets."""

    recording: RecordingInfo
    model: ModelIdentity
    labels: tuple[str, ...]
    parameters: AnalysisParameters
    times: FrameTimes
    probabilities: FloatArray  # [frames, labels]: the sequence head's, or window means
    raw_labels: IntArray  # argmax of probabilities
    smoothed_labels: IntArray  # after min_bout_ms
    bouts: list[Bout]
    budget: list[LabelBudget]
    transitions: list[list[int]]
    bins: list[BinBudget] | None
    windows: int
    seconds: float = field(default=0.0)
    method: str = WINDOW_MEAN  # SEQUENCE_HEAD or WINDOW_MEAN
    #: Stretches the recording was decoded in by worker processes (parallel.py); 0: in order.
    stretches: int = 0

    @property
    def frames(self) -> int:
        return len(self.raw_labels)

    @property
    def duration_s(self) -> float:
        return self.times.duration_s


def _check_cancelled(cancelled: Callable[[], bool] | None, frames: int) -> None:
    if cancelled is not None and cancelled():
        raise AnalysisCancelledError(f"the analysis was cancelled after {frames} frames")


def analyse_recording(
    source: FrameSource,
    model: SequenceModel,
    parameters: AnalysisParameters,
    *,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    method: str | None = None,
    processes: int = 1,
) -> RecordingAnalysis:
    """Label every frame of ``source`` with ``model``; see frame_labels.py, windows.py and
    bouts.py for the rules. ``method`` (None: the model's own, ``default_method``) forces
    ``window_mean`` or ``sequence_head``, for comparing them (make evaluate).

    ``progress(frames_done, frames_total)`` is called every few hundred frames; the total is the
    container's estimate while decoding and exact in the last call. ``cancelled()`` is polled
    as often, and raises AnalysisCancelledError when it answers True. ``processes`` > 1 decodes
    and encodes a long recording in stretches, that many at once (parallel.py); the results are
    the same as decoding it in order.
    """
    started = time.perf_counter()
    manifest = model.manifest
    parameters.validate(manifest)
    method = method or default_method(model)
    if method not in METHODS or (method == SEQUENCE_HEAD and not model.has_sequence_head):
        raise InvalidAnalysisParametersError(
            f"method {method!r} is not available for model {model.name!r} (it offers "
            f"{', '.join(m for m in METHODS if m == WINDOW_MEAN or model.has_sequence_head)})"
        )
    stretches = plan_stretches(source, processes) if model.has_parts else None
    labelled: _Labelled | None = None
    if stretches is not None:
        try:
            labelled = _label_in_stretches(
                source, model, parameters, method, stretches, processes, progress, cancelled
            )
        except StretchesAbandonedError:
            labelled = None  # decoded in order below, which names any fault in the file
    if labelled is None:
        labelled = _label_in_order(source, model, parameters, method, progress, cancelled)
    probabilities, starts = labelled.probabilities, labelled.starts
    frames = len(starts)
    times = _frame_times(starts, labelled.last_duration, source.info.fps)
    raw = np.argmax(probabilities, axis=1).astype(np.int64)
    smoothed = smooth(raw, times, parameters.thresholds_s(manifest.labels))
    bouts = bouts_of(smoothed, manifest.labels, times, probabilities)
    bins = (
        binned_budget(bouts, manifest.labels, times, float(parameters.bin_s))
        if parameters.bin_s
        else None
    )
    if progress is not None:
        progress(frames, frames)
    return RecordingAnalysis(
        recording=with_frames(source.info, frames, times.duration_s),
        model=ModelIdentity.of(model),
        labels=manifest.labels,
        parameters=parameters,
        times=times,
        probabilities=probabilities,
        raw_labels=raw,
        smoothed_labels=smoothed,
        bouts=bouts,
        budget=time_budget(bouts, manifest.labels, times.duration_s),
        transitions=transitions(bouts, manifest.labels),
        bins=bins,
        windows=labelled.windows,
        seconds=time.perf_counter() - started,
        method=method,
        stretches=labelled.stretches,
    )


@dataclass(frozen=True, slots=True)
class _Labelled:
    """What labelling the frames gave; ``stretches``: how many the recording was decoded in
    (parallel.py), 0 in order."""

    probabilities: FloatArray
    starts: Sequence[float] | npt.NDArray[np.float64]
    last_duration: float | None
    windows: int
    stretches: int = 0


def _report(progress: Progress | None, done: int, estimate: int | None) -> None:
    """Progress while decoding: the container's estimate of the total, never below ``done``."""
    if progress is not None:
        progress(done, max(estimate, done) if estimate else None)


def _scorer(
    model: SequenceModel, parameters: AnalysisParameters, method: str
) -> WindowScorer | SequenceHeadLabeller:
    if method == SEQUENCE_HEAD:
        return SequenceHeadLabeller(model)
    # Every frame through the CNN once when the model ships its parts (scoring.py).
    return scorer_for(model, stride=parameters.stride)


def _label_in_order(
    source: FrameSource,
    model: SequenceModel,
    parameters: AnalysisParameters,
    method: str,
    progress: Progress | None,
    cancelled: Callable[[], bool] | None,
) -> _Labelled:
    """Frames decoded in order on a thread of their own, the model scoring them here."""
    scorer = _scorer(model, parameters, method)
    estimate = source.info.declared_frames
    starts: list[float] = []
    last_duration: float | None = None
    _check_cancelled(cancelled, 0)
    for frame in decoded_ahead(source.frames(model.manifest.input)):
        scorer.add(frame.pixels)
        starts.append(frame.time_s)
        last_duration = frame.duration_s
        done = len(starts)
        if done % CHUNK_FRAMES == 0:
            _check_cancelled(cancelled, done)
            _report(progress, done, estimate)
    return _Labelled(scorer.finish(), starts, last_duration, scorer.windows)


def _label_in_stretches(
    source: FrameSource,
    model: SequenceModel,
    parameters: AnalysisParameters,
    method: str,
    stretches: list[Stretch],
    processes: int,
    progress: Progress | None,
    cancelled: Callable[[], bool] | None,
) -> _Labelled:
    """Frames decoded and encoded by ``processes`` workers (parallel.py), scored here."""
    scorer = _scorer(model, parameters, method)
    if not isinstance(scorer, SplitScorer | SequenceHeadLabeller):
        raise TypeError("stretches need a model with a frame encoder")
    estimate = source.info.declared_frames

    def received(done: int) -> None:
        _report(progress, done, estimate)

    starts: list[npt.NDArray[np.float64]] = []
    last_duration: float | None = None
    chunks = encoded_in_stretches(
        source, model, stretches, processes, received=received, cancelled=cancelled
    )
    for chunk in chunks:
        scorer.add_embeddings(chunk.embeddings)
        starts.append(chunk.times)
        last_duration = chunk.last_duration
    times = np.concatenate(starts)
    return _Labelled(scorer.finish(), times, last_duration, scorer.windows, len(stretches))


def _frame_times(
    starts: Sequence[float] | npt.NDArray[np.float64],
    last_duration: float | None,
    fps: float | None,
) -> FrameTimes:
    """Frame start times and the end of the last frame: its own duration when the source gave
    one, else the median interval between frames, else one frame at ``fps``."""
    array = np.asarray(starts, dtype=np.float64)
    if last_duration and last_duration > 0:
        tail = last_duration
    elif len(array) > 1:
        tail = float(np.median(np.diff(array)))
    elif fps:
        tail = 1.0 / fps
    else:
        tail = 0.0
    return FrameTimes(array, float(array[-1] + tail))
