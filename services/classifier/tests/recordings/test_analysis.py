"""A generated H.264 recording through analyse_recording and write_results, with the real model:
labels near the generator's, result files that parse and agree with each other."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from classifier.core.errors import (
    AnalysisCancelledError,
    InvalidAnalysisParametersError,
    TooFewFramesError,
)
from classifier.model.runtime import SequenceModel
from classifier.recordings.analysis import (
    AnalysisParameters,
    Provenance,
    RecordingAnalysis,
    analyse_recording,
    file_sha256,
    sequence_sha256,
)
from classifier.recordings.exports import (
    BORIS_COLUMNS,
    RESULT_FILES,
    frames_header,
    write_frames_csv,
    write_results,
)
from classifier.recordings.source import ImageSequenceSource, VideoSource
from classifier.recordings.windows import window_starts
from tests.recordings.conftest import SHORT_FRAMES
from tests.recordings.media import encode_video, write_frames

PARAMETERS = AnalysisParameters(stride=1, min_bout_ms=200, bin_s=4.0)


@pytest.fixture(scope="module")
def analysed(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[RecordingAnalysis, Provenance, Path, list[tuple[int, int | None]]]:
    path, _, _ = short_recording
    calls: list[tuple[int, int | None]] = []
    analysis = analyse_recording(
        VideoSource(path), bundled_model, PARAMETERS, progress=lambda d, t: calls.append((d, t))
    )
    provenance = Provenance.create(
        input_sha256=file_sha256(path),
        model=bundled_model,
        parameters=PARAMETERS,
        source_filename=path.name,
        subject="mouse-7",
        session="day-1",
        metadata={"cage": 3},
    )
    out = tmp_path_factory.mktemp("results")
    write_results(analysis, provenance, out)
    return analysis, provenance, out, calls


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_labels_match_the_generators(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
    short_recording: tuple[Path, np.ndarray, list[str]],
) -> None:
    analysis, _, _, _ = analysed
    _, _, truth = short_recording
    predicted = [analysis.labels[k] for k in analysis.smoothed_labels]
    assert analysis.frames == SHORT_FRAMES
    agreement = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    # A short recording is mostly bout edges, where 24-frame windows straddle two bouts; the
    # published accuracy comes from `make evaluate` on 9000-frame recordings.
    assert agreement >= 0.9
    assert {bout.label for bout in analysis.bouts} == set(truth)


def test_progress_counts_up_to_the_decoded_frames(
    analysed: tuple[RecordingAnalysis, Provenance, Path, list[tuple[int, int | None]]],
) -> None:
    _, _, _, calls = analysed
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert calls[-1] == (SHORT_FRAMES, SHORT_FRAMES)
    assert all(total is not None and total >= d for d, total in calls)


def test_every_result_file_is_written(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    _, _, out, _ = analysed
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULT_FILES, "time_budget_bins.csv"])


def test_frames_csv_has_every_frame_and_agrees_with_bouts_csv(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    analysis, _, out, _ = analysed
    frames = _rows(out / "frames.csv")
    bouts = _rows(out / "bouts.csv")
    labels = analysis.labels
    assert list(frames[0]) == [
        "frame", "time_s", "label", "label_raw", "confidence", *(f"p_{x}" for x in labels)
    ]  # fmt: skip
    assert [int(row["frame"]) for row in frames] == list(range(SHORT_FRAMES))
    assert float(frames[30]["time_s"]) == pytest.approx(1.0)
    for row in frames[:50]:
        probabilities = [float(row[f"p_{x}"]) for x in labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert float(row["confidence"]) == pytest.approx(probabilities[labels.index(row["label"])])
    # Bouts cover every frame exactly once, in order, and carry the frames' labels.
    assert sum(int(b["frames"]) for b in bouts) == SHORT_FRAMES
    expanded = [b["label"] for b in bouts for _ in range(int(b["frames"]))]
    assert expanded == [row["label"] for row in frames]
    assert int(bouts[0]["start_frame"]) == 0
    assert int(bouts[-1]["end_frame"]) == SHORT_FRAMES - 1
    for before, after in itertools.pairwise(bouts):
        assert int(after["start_frame"]) == int(before["end_frame"]) + 1
        assert float(after["start_s"]) == pytest.approx(float(before["end_s"]))
        assert before["label"] != after["label"]
    assert float(bouts[-1]["end_s"]) == pytest.approx(SHORT_FRAMES / 30)
    assert [int(b["bout"]) for b in bouts] == list(range(1, len(bouts) + 1))
    # Smoothing at 200 ms leaves no bout shorter than 6 frames (at 30 fps).
    assert min(int(b["frames"]) for b in bouts) >= 6


def test_frames_csv_is_the_text_the_csv_module_writes_for_its_cells(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any], tmp_path: Path
) -> None:
    analysis, _, out, _ = analysed
    # Labels a csv writer must quote: a comma, a quote, and a plain one.
    quoted = dataclasses.replace(analysis, labels=("a,b", 'say "hi"', *analysis.labels[2:]))
    for subject, folder in ((analysis, out), (quoted, tmp_path)):
        write_frames_csv(folder / "frames.csv", subject)
        expected = io.StringIO(newline="")
        writer = csv.writer(expected, lineterminator="\n")
        writer.writerow(frames_header(subject.labels))
        for index in range(subject.frames):
            final, raw = subject.smoothed_labels[index], subject.raw_labels[index]
            row = subject.probabilities[index]
            writer.writerow([
                str(index), f"{subject.times.start_of(index):.6f}", subject.labels[final],
                subject.labels[raw], f"{float(row[final]):.6f}",
                *(f"{float(value):.6f}" for value in row),
            ])  # fmt: skip
        text = (folder / "frames.csv").read_text(encoding="utf-8")
        assert text == expected.getvalue()
    assert text.startswith('frame,time_s,label,label_raw,confidence,"p_a,b","p_say ""hi""",')


def test_the_time_budget_has_every_label_and_adds_up_to_the_duration(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    analysis, _, out, _ = analysed
    budget = _rows(out / "time_budget.csv")
    frames = _rows(out / "frames.csv")
    assert [row["label"] for row in budget] == list(analysis.labels)
    assert sum(float(row["total_s"]) for row in budget) == pytest.approx(SHORT_FRAMES / 30)
    assert sum(float(row["percent"]) for row in budget) == pytest.approx(100.0, abs=1e-3)
    for row in budget:
        assert int(row["frames"]) == sum(1 for f in frames if f["label"] == row["label"])
        if int(row["bouts"]) == 0:
            assert (row["total_s"], row["first_onset_s"]) == ("0.000000", "")
    bins = _rows(out / "time_budget_bins.csv")
    assert len(bins) == 3 * len(analysis.labels)  # 12 s in bins of 4 s
    for number in range(3):
        assert sum(float(r["total_s"]) for r in bins if r["bin"] == str(number)) == pytest.approx(4)


def test_transitions_count_consecutive_bouts(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    analysis, _, out, _ = analysed
    bouts = _rows(out / "bouts.csv")
    rows = {row["from"]: row for row in _rows(out / "transitions.csv")}
    assert list(rows) == list(analysis.labels)
    total = sum(int(value) for row in rows.values() for key, value in row.items() if key != "from")
    assert total == len(bouts) - 1
    for before, after in itertools.pairwise(bouts):
        assert int(rows[before["label"]][after["label"]]) >= 1


def test_boris_csv_has_a_start_and_a_stop_per_bout_in_borises_columns(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    _analysis, provenance, out, _ = analysed
    with (out / "boris.csv").open(newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == BORIS_COLUMNS
    events = _rows(out / "boris.csv")
    bouts = _rows(out / "bouts.csv")
    assert len(events) == 2 * len(bouts)
    for bout, start, stop in zip(bouts, events[::2], events[1::2], strict=True):
        assert (start["Behavior"], start["Behavior type"]) == (bout["label"], "START")
        assert (stop["Behavior"], stop["Behavior type"]) == (bout["label"], "STOP")
        assert int(start["Image index"]) == int(bout["start_frame"])
        # SimBA's importer turns Time back into a frame with int(Time * FPS).
        assert int(float(start["Time"]) * float(start["FPS"])) == int(bout["start_frame"])
        assert int(float(stop["Time"]) * float(stop["FPS"])) == int(bout["end_frame"]) + 1
    first = events[0]
    assert (first["Observation id"], first["Subject"]) == ("day-1", "mouse-7")
    assert first["Media file name"] == "cage.mp4"
    assert first["Observation type"] == "Media file(s)"
    assert float(first["Media duration (s)"]) == pytest.approx(12.0)
    assert provenance.input_sha256 in first["Description"]
    assert '"cage": 3' in first["Description"]


def test_result_json_and_the_zip_carry_the_provenance(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
    short_recording: tuple[Path, np.ndarray, list[str]],
) -> None:
    analysis, provenance, out, _ = analysed
    document = json.loads((out / "result.json").read_text())
    assert document["provenance"] == provenance.to_dict()
    assert document["provenance"]["input_sha256"] == file_sha256(short_recording[0])
    assert document["provenance"]["parameters"] == {
        "stride": 1,
        "min_bout_ms": 200,
        "bin_s": 4.0,
        "method": "sequence_head",
    }
    assert document["recording"] == {
        "filename": "cage.mp4",
        "frames": SHORT_FRAMES,
        "fps": pytest.approx(30.0),
        "duration_s": pytest.approx(12.0),
        "width": 64,
        "height": 64,
        "codec": "h264",
        "sha256": provenance.input_sha256,
    }
    assert document["model"]["name"] == "rodent-behaviour"
    assert document["frames"] == SHORT_FRAMES
    assert [b["label"] for b in document["bouts"]] == [b["label"] for b in _rows(out / "bouts.csv")]
    assert [row["label"] for row in document["time_budget"]] == list(analysis.labels)
    assert document["transitions"]["labels"] == list(analysis.labels)
    with zipfile.ZipFile(out / "results.zip") as archive:
        names = set(archive.namelist())
        assert names == {
            *(name for name in RESULT_FILES if name != "results.zip"),
            "time_budget_bins.csv",
            "job.json",
            "provenance.json",
        }
        assert json.loads(archive.read("provenance.json")) == provenance.to_dict()
        job = json.loads(archive.read("job.json"))
        assert (job["status"], job["subject"], job["session"]) == ("succeeded", "mouse-7", "day-1")
        assert archive.read("frames.csv") == (out / "frames.csv").read_bytes()


def test_the_ethogram_is_a_png_with_its_provenance(
    analysed: tuple[RecordingAnalysis, Provenance, Path, Any],
) -> None:
    _, provenance, out, _ = analysed
    data = (out / "ethogram.png").read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert 1000 <= image.width <= 2000
        assert 300 <= image.height <= 1000
        image.load()
        assert isinstance(image, PngImagePlugin.PngImageFile)
        described = json.loads(image.text["Description"])
    assert described["input_sha256"] == provenance.input_sha256
    assert described["model_name"] == "rodent-behaviour"


def test_stride_above_one_covers_the_first_and_the_last_frames(
    short_recording: tuple[Path, np.ndarray, list[str]], bundled_model: SequenceModel
) -> None:
    path, _, _ = short_recording
    # Stride steps the windows, so it applies to window aggregation (the sequence head runs none).
    analysis = analyse_recording(
        VideoSource(path), bundled_model, AnalysisParameters(stride=24), method="window_mean"
    )
    assert analysis.frames == SHORT_FRAMES
    assert analysis.windows == len(window_starts(SHORT_FRAMES, 24, 24)) == 15
    sums = analysis.probabilities.sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, rtol=1e-4)
    assert analysis.bouts[0].start_frame == 0
    assert analysis.bouts[-1].end_frame == SHORT_FRAMES - 1


def test_an_image_folder_goes_through_the_same_pipeline(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
) -> None:
    _, frames, truth = short_recording
    paths = write_frames(tmp_path / "seq", frames[:120])
    source = ImageSequenceSource(paths, [p.name for p in paths], fps=30.0, name="seq")
    analysis = analyse_recording(source, bundled_model, AnalysisParameters(stride=4))
    assert analysis.frames == 120
    assert analysis.duration_s == pytest.approx(4.0)
    assert analysis.recording.filename == "seq"
    predicted = [analysis.labels[k] for k in analysis.raw_labels]
    assert np.mean([p == t for p, t in zip(predicted, truth[:120], strict=True)]) >= 0.8


def test_cancelling_stops_between_chunks(
    short_recording: tuple[Path, np.ndarray, list[str]], bundled_model: SequenceModel
) -> None:
    path, _, _ = short_recording
    polls: list[int] = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) > 1  # the first poll (before any frame) lets it start

    with pytest.raises(AnalysisCancelledError, match="cancelled after 256 frames") as caught:
        analyse_recording(
            VideoSource(path), bundled_model, AnalysisParameters(), cancelled=cancelled
        )
    assert caught.value.type == "cancelled"


def test_a_video_shorter_than_one_window_names_both_numbers(
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
) -> None:
    _, frames, _ = short_recording
    path = encode_video(tmp_path / "short.mp4", frames[:10])
    with pytest.raises(TooFewFramesError) as caught:
        analyse_recording(VideoSource(path), bundled_model, AnalysisParameters())
    assert caught.value.detail == (
        "the recording has 10 frame(s), fewer than one window of the model's 24 frames"
    )


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (AnalysisParameters(stride=25), "stride 25 is outside 1..24"),
        (AnalysisParameters(stride=0), "stride 0 is outside 1..24"),
        (AnalysisParameters(min_bout_ms={"sleep": 100}), "unknown label(s) sleep"),
        (AnalysisParameters(min_bout_ms=-5), "must be a number of milliseconds >= 0"),
        (AnalysisParameters(min_bout_ms={"rest": float("nan")}), "min_bout_ms for rest"),
        (AnalysisParameters(bin_s=0), "bin_s must be a number of seconds > 0"),
    ],
)
def test_parameters_that_do_not_fit_the_model_are_refused(
    parameters: AnalysisParameters,
    message: str,
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
) -> None:
    with pytest.raises(InvalidAnalysisParametersError, match=re.escape(message)) as caught:
        analyse_recording(VideoSource(short_recording[0]), bundled_model, parameters)
    assert caught.value.type == "invalid_parameters"


def test_an_image_sequences_hash_covers_every_frame_in_order() -> None:
    first, second = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    expected = hashlib.sha256(f"{first}\n{second}\n".encode()).hexdigest()
    assert sequence_sha256([first, second]) == expected
    assert sequence_sha256([second, first]) != expected


def test_provenance_times_are_iso_8601_utc_with_milliseconds(bundled_model: SequenceModel) -> None:
    moment = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    provenance = Provenance.create(
        input_sha256="0" * 64,
        model=bundled_model,
        parameters=AnalysisParameters(stride=2, min_bout_ms={"rear": 150}),
        source_filename="cage.mp4",
        created_at=moment,
    )
    assert provenance.created_at == "2026-12-01T10:00:00.123Z"
    assert provenance.parameters == {
        "stride": 2,
        "min_bout_ms": {"rear": 150},
        "bin_s": None,
        "method": "sequence_head",  # the bundled model ships a sequence head
    }
    assert provenance.model_sha256 == bundled_model.manifest.sha256
