"""Recordings analysed by the model's sequence head: per-frame labels that match the generator,
streamed in chunks equal to one whole run, and the method recorded; models without a head keep
window aggregation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from behaviour_clips import generate_recording
from classifier.core.config import DEFAULT_MODEL_DIR
from classifier.core.errors import InvalidAnalysisParametersError, TooFewFramesError
from classifier.model.runtime import SequenceModel, load_model
from classifier.recordings.analysis import AnalysisParameters, Provenance, analyse_recording
from classifier.recordings.exports import write_results
from classifier.recordings.frame_labels import SequenceHeadLabeller
from classifier.recordings.source import ImageSequenceSource, VideoSource
from tests.recordings.conftest import SHORT_FRAMES
from tests.recordings.media import write_frames


@pytest.fixture(scope="module")
def headless_model(tmp_path_factory: pytest.TempPathFactory) -> SequenceModel:
    """The bundled model without its sequence head, as a user's own split model would be."""
    folder = tmp_path_factory.mktemp("headless") / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["parts"]["sequence_head"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "sequence_head.onnx").unlink()
    return load_model(folder)


def _agreement(labels: tuple[str, ...], predicted: Any, truth: list[str]) -> float:
    return float(np.mean(np.asarray(labels)[predicted] == np.asarray(truth)))


def test_the_head_labels_a_short_video_like_the_generator_and_says_so(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
) -> None:
    path, _, truth = short_recording
    parameters = AnalysisParameters()
    analysis = analyse_recording(VideoSource(path), bundled_model, parameters)
    window = analyse_recording(VideoSource(path), bundled_model, parameters, method="window_mean")

    assert (analysis.method, analysis.windows, analysis.frames) == ("sequence_head", 0, 360)
    assert (window.method, window.windows) == ("window_mean", SHORT_FRAMES - 24 + 1)
    np.testing.assert_allclose(analysis.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # A bound for a 12-second recording; the published figures are make evaluate's.
    assert _agreement(analysis.labels, analysis.raw_labels, truth) >= 0.93
    assert {bout.label for bout in analysis.bouts} == set(truth)

    provenance = Provenance.create(
        input_sha256="0" * 64,
        model=bundled_model,
        parameters=parameters,
        source_filename="cage.mp4",
    )
    write_results(analysis, provenance, tmp_path)
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["parameters"]["method"] == "sequence_head"
    assert document["provenance"]["parameters"]["method"] == "sequence_head"
    assert document["windows"] == 0


def test_streamed_in_small_batches_and_chunks_it_equals_one_whole_run(
    bundled_model: SequenceModel,
) -> None:
    pixels, _ = generate_recording(13, 1500)
    labeller = SequenceHeadLabeller(bundled_model, batch=37, chunk_frames=200)
    for frame in pixels:
        labeller.add(frame)
    streamed = labeller.finish()

    embeddings = bundled_model.encode_frames(pixels.astype(np.float32)[..., None] / 255.0)
    whole = bundled_model.label_frames(embeddings, chunk_frames=len(pixels))
    assert streamed.shape == (1500, 8)
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)


def test_an_image_sequence_goes_through_the_head_too(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
) -> None:
    _, frames, truth = short_recording
    paths = write_frames(tmp_path / "seq", frames[:240])
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0, name="seq")
    analysis = analyse_recording(source, bundled_model, AnalysisParameters())

    assert analysis.method == "sequence_head"
    assert _agreement(analysis.labels, analysis.raw_labels, truth[:240]) >= 0.9


def test_a_model_without_a_head_keeps_window_aggregation(
    short_recording: tuple[Path, np.ndarray, list[str]], headless_model: SequenceModel
) -> None:
    path, _, truth = short_recording
    parameters = AnalysisParameters(stride=2)
    analysis = analyse_recording(VideoSource(path), headless_model, parameters)
    provenance = Provenance.create(
        input_sha256="0" * 64, model=headless_model, parameters=parameters, source_filename="x"
    )

    assert analysis.method == "window_mean"
    assert analysis.windows == len(range(0, SHORT_FRAMES - 24 + 1, 2))
    assert provenance.parameters == {
        "stride": 2,
        "min_bout_ms": None,
        "bin_s": None,
        "method": "window_mean",
    }
    assert _agreement(analysis.labels, analysis.raw_labels, truth) >= 0.8
    with pytest.raises(InvalidAnalysisParametersError, match="method 'sequence_head' is not"):
        analyse_recording(VideoSource(path), headless_model, parameters, method="sequence_head")


def test_a_recording_shorter_than_a_window_is_refused_by_the_head_too(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
) -> None:
    _, frames, _ = short_recording
    paths = write_frames(tmp_path / "seq", frames[:10])
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0, name="seq")

    with pytest.raises(TooFewFramesError) as caught:
        analyse_recording(source, bundled_model, AnalysisParameters())
    assert "10 frame(s)" in str(caught.value)
    assert "24" in str(caught.value)
