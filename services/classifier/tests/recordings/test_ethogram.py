"""The ethogram: readable for an hour-long recording, greyscale-safe colours, m:ss axis."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from classifier.recordings.analysis import (
    AnalysisParameters,
    ModelIdentity,
    Provenance,
    RecordingAnalysis,
)
from classifier.recordings.bouts import FrameTimes, bouts_of, time_budget, transitions
from classifier.recordings.ethogram import (
    footer_line,
    label_colours,
    minutes_seconds,
    render_ethogram,
)
from classifier.recordings.source import RecordingInfo

LABELS = ("drink", "eat", "groom", "hang", "micromovement", "rear", "rest", "walk")


def _analysis(labels: np.ndarray, fps: float = 30.0) -> tuple[RecordingAnalysis, Provenance]:
    n = len(labels)
    probabilities = np.full((n, len(LABELS)), 0.02, dtype=np.float32)
    probabilities[np.arange(n), labels] = 0.86
    times = FrameTimes.regular(n, fps)
    bouts = bouts_of(labels, LABELS, times, probabilities)
    model = ModelIdentity("rodent-behaviour", "1.0.0", "f" * 64)
    parameters = AnalysisParameters()
    analysis = RecordingAnalysis(
        recording=RecordingInfo("night.mp4", n, fps, n / fps, 640, 480, "h264"),
        model=model,
        labels=LABELS,
        parameters=parameters,
        times=times,
        probabilities=probabilities,
        raw_labels=labels,
        smoothed_labels=labels,
        bouts=bouts,
        budget=time_budget(bouts, LABELS, times.duration_s),
        transitions=transitions(bouts, LABELS),
        bins=None,
        windows=n,
    )
    provenance = Provenance.create(
        input_sha256="ab" * 32, model=model, parameters=parameters, source_filename="night.mp4"
    )
    return analysis, provenance


def test_a_one_frame_bout_shows_in_an_hour_long_recording() -> None:
    labels = np.full(108_000, LABELS.index("rest"), dtype=np.int64)
    labels[54_000] = LABELS.index("walk")  # one frame, 33 ms of 60 minutes
    analysis, provenance = _analysis(labels)
    with Image.open(io.BytesIO(render_ethogram(analysis, provenance))) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    walk = np.array([round(255 * c) for c in label_colours(len(LABELS))[7][:3]])
    # The legend has a walk swatch too; the bar is the match in the plot's middle third.
    matches = np.argwhere(np.abs(pixels - walk).sum(axis=2) <= 6)
    width = pixels.shape[1]
    in_plot = matches[(matches[:, 1] > width / 3) & (matches[:, 1] < 2 * width / 3)]
    assert len(in_plot) >= 10  # a visible bar, at least a pixel wide over its row's height
    assert abs(in_plot[:, 1].mean() - width / 2) < width * 0.05  # near 30:00


def test_colours_differ_in_lightness_so_they_survive_greyscale() -> None:
    colours = label_colours(8)
    lightness = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b, _ in colours]
    assert lightness == sorted(lightness)
    steps = np.diff(lightness)
    assert steps.min() > 0.04


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (65, "1:05"), (599.6, "10:00"), (3600, "60:00")]
)
def test_the_time_axis_reads_minutes_and_seconds(seconds: float, shown: str) -> None:
    assert minutes_seconds(seconds) == shown


def test_the_footer_names_model_input_and_parameters() -> None:
    labels = np.zeros(48, dtype=np.int64)
    analysis, provenance = _analysis(labels)
    line = footer_line(analysis, provenance)
    assert line.startswith("model rodent-behaviour 1.0.0 (sha256 ffffffffffff)")
    assert "input sha256 abababababab" in line
    assert "stride 1, min_bout_ms off" in line
    smoothed = dataclasses.replace(analysis, parameters=AnalysisParameters(min_bout_ms=300.0))
    assert "min_bout_ms 300 ms" in footer_line(smoothed, provenance)
    per_label = dataclasses.replace(
        analysis, parameters=AnalysisParameters(min_bout_ms={"rear": 90})
    )
    assert 'min_bout_ms {"rear": 90}' in footer_line(per_label, provenance)
