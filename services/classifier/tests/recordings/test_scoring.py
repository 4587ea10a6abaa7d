"""Scoring windows: the split path (each frame encoded once) against the whole-clip graph, on a
generated recording, with the bundled model; and the whole-clip path for a model without parts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from classifier.core.errors import TooFewFramesError
from classifier.model.runtime import PARTS_TOLERANCE, SequenceModel
from classifier.pipeline.tensor import build_tensor
from classifier.recordings.analysis import AnalysisParameters, analyse_recording
from classifier.recordings.frame_labels import WINDOW_MEAN
from classifier.recordings.scoring import SplitScorer, WholeClipScorer, scorer_for
from classifier.recordings.source import VideoSource
from classifier.recordings.windows import window_starts


class _WindowRecorder:
    """The bundled model, recording each window's probabilities as the split path answers them."""

    def __init__(self, model: SequenceModel) -> None:
        self.model = model
        self.manifest = model.manifest
        self.name = model.name
        self.has_parts = True
        self.encoded = 0
        self.answers: list[np.ndarray] = []

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        self.encoded += len(frames)
        return self.model.encode_frames(frames)

    def classify_windows(self, embeddings: np.ndarray) -> np.ndarray:
        answer = self.model.classify_windows(embeddings)
        self.answers.append(answer)
        return answer


@pytest.fixture(scope="module")
def pixels(
    short_recording: tuple[Path, np.ndarray, list[str]], bundled_model: SequenceModel
) -> list[np.ndarray]:
    """The short recording's frames as the model's input (decoded from the H.264 file)."""
    path, _, _ = short_recording
    return [frame.pixels for frame in VideoSource(path).frames(bundled_model.manifest.input)]


def _whole_clip_windows(
    model: SequenceModel, pixels: list[np.ndarray], starts: list[int]
) -> np.ndarray:
    window = model.manifest.input.frames
    batch = np.concatenate(
        [build_tensor(pixels[start : start + window], model.manifest.input) for start in starts]
    )
    return np.concatenate(
        [model.probabilities_for(batch[i : i + 64]) for i in range(0, len(batch), 64)]
    )


def test_scorer_for_takes_the_split_path_only_for_a_model_with_parts(
    bundled_model: SequenceModel,
) -> None:
    assert bundled_model.has_parts
    assert isinstance(scorer_for(bundled_model), SplitScorer)
    own = dataclasses.replace(bundled_model, parts=None)  # a user's model: whole-clip graph only
    assert isinstance(scorer_for(own), WholeClipScorer)
    with pytest.raises(ValueError, match="no frame encoder"):
        SplitScorer(own)


@pytest.mark.parametrize(("stride", "chunk"), [(1, 256), (1, 7), (5, 10), (24, 50)])
def test_split_window_probabilities_equal_the_whole_clip_graphs(
    bundled_model: SequenceModel, pixels: list[np.ndarray], stride: int, chunk: int
) -> None:
    recorder = _WindowRecorder(bundled_model)
    scorer = SplitScorer(recorder, stride=stride, chunk=chunk, head_batch=40)  # type: ignore[arg-type]
    for frame in pixels:
        scorer.add(frame)
    per_frame = scorer.finish()
    window = bundled_model.manifest.input.frames
    starts = window_starts(len(pixels), window, stride)
    split = np.concatenate(recorder.answers)
    expected = _whole_clip_windows(bundled_model, pixels, starts)
    assert recorder.encoded == len(pixels)  # every frame through the CNN exactly once
    assert scorer.windows == len(starts) == len(split)
    assert float(np.abs(split - expected).max()) <= PARTS_TOLERANCE
    # And the per-frame means the analysis reports, against the whole-clip path's.
    whole = WholeClipScorer(dataclasses.replace(bundled_model, parts=None), stride=stride)
    for frame in pixels:
        whole.add(frame)
    assert per_frame.shape == (len(pixels), len(bundled_model.manifest.labels))
    assert float(np.abs(per_frame - whole.finish()).max()) <= PARTS_TOLERANCE


def test_both_paths_label_a_recording_alike(
    short_recording: tuple[Path, np.ndarray, list[str]], bundled_model: SequenceModel
) -> None:
    path, _, truth = short_recording
    parameters = AnalysisParameters(stride=1)
    split = analyse_recording(VideoSource(path), bundled_model, parameters, method=WINDOW_MEAN)
    own = dataclasses.replace(bundled_model, parts=None)
    whole = analyse_recording(VideoSource(path), own, parameters)
    assert split.frames == whole.frames == len(truth)
    assert split.windows == whole.windows == len(truth) - 23
    assert float(np.abs(split.probabilities - whole.probabilities).max()) <= PARTS_TOLERANCE
    assert np.array_equal(split.raw_labels, whole.raw_labels)
    labels = bundled_model.manifest.labels
    agreement = np.mean([labels[i] == t for i, t in zip(split.raw_labels, truth, strict=True)])
    assert agreement >= 0.9


def test_the_split_path_names_both_numbers_when_too_few_frames(
    bundled_model: SequenceModel, pixels: list[np.ndarray]
) -> None:
    scorer = SplitScorer(bundled_model, chunk=8)
    for frame in pixels[:23]:
        scorer.add(frame)
    with pytest.raises(TooFewFramesError) as caught:
        scorer.finish()
    assert (caught.value.frames, caught.value.window) == (23, 24)
