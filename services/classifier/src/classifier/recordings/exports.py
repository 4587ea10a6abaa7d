"""The result files of an analysed recording: typed rows for every CSV, one CSV writer, the
ethogram, ``result.json`` and ``results.zip``.

The CSVs stay plain (the header is the first line, so any tool parses them without options);
where they came from goes into ``result.json``, ``provenance.json`` and ``job.json`` inside the
zip, BORIS's own observation fields in ``boris.csv``, and the ethogram's PNG text and footer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from classifier.recordings.analysis import Provenance, RecordingAnalysis
from classifier.recordings.bouts import BinBudget, Bout, LabelBudget
from classifier.recordings.ethogram import render_ethogram

RESULT_FILES = (
    "frames.csv",
    "bouts.csv",
    "time_budget.csv",
    "transitions.csv",
    "boris.csv",
    "ethogram.png",
    "result.json",
    "results.zip",
)
BINS_FILE = "time_budget_bins.csv"

Cell = str | int | float | None


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(row: Any) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(type(row))
    if names is None:
        names = _FIELD_NAMES[type(row)] = tuple(field.name for field in fields(row))
    return names


def _values(row: Any) -> list[Cell]:
    """A flat dataclass row's values in field order. ``dataclasses.asdict`` deep-copies every
    value on the way: for an hour's 2,600 bouts it was a fifth of writing the results."""
    return [getattr(row, name) for name in _field_names(row)]


def _mapping(row: Any) -> dict[str, Any]:
    """A flat dataclass row as a dict, field by field (see ``_values``)."""
    return {name: getattr(row, name) for name in _field_names(row)}


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def frames_header(labels: Sequence[str]) -> list[str]:
    """frames.csv: a frame's label after smoothing (``label``) and before (``label_raw``),
    the probability of ``label`` (``confidence``) and of every label, in manifest order."""
    return ["frame", "time_s", "label", "label_raw", "confidence", *(f"p_{x}" for x in labels)]


@dataclass(frozen=True, slots=True)
class BoutRow:
    bout: int  # 1-based, in time order
    label: str
    start_frame: int
    end_frame: int  # inclusive
    frames: int
    start_s: float
    end_s: float  # the end of the last frame
    duration_s: float
    mean_confidence: float

    @staticmethod
    def header() -> list[str]:
        return ["bout", "label", "start_frame", "end_frame", "frames", "start_s", "end_s",
                "duration_s", "mean_confidence"]  # fmt: skip

    @classmethod
    def of(cls, number: int, bout: Bout) -> BoutRow:
        return cls(number, bout.label, bout.start_frame, bout.end_frame, bout.frames,
                   bout.start_s, bout.end_s, bout.duration_s, bout.mean_confidence)  # fmt: skip

    def cells(self) -> list[Cell]:
        return _values(self)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    label: str
    bouts: int
    frames: int
    total_s: float
    percent: float
    mean_bout_s: float
    median_bout_s: float
    first_onset_s: float | None  # empty when the label never occurs

    @staticmethod
    def header() -> list[str]:
        return ["label", "bouts", "frames", "total_s", "percent", "mean_bout_s",
                "median_bout_s", "first_onset_s"]  # fmt: skip

    @classmethod
    def of(cls, budget: LabelBudget) -> BudgetRow:
        return cls(**_mapping(budget))

    def cells(self) -> list[Cell]:
        return _values(self)


@dataclass(frozen=True, slots=True)
class BinRow:
    bin: int  # 0-based
    bin_start_s: float
    bin_end_s: float
    label: str
    bouts: int  # bouts of the label that start in the bin
    frames: int  # frames of the label that start in the bin
    total_s: float  # seconds of the label within the bin
    percent: float  # of the bin's length

    @staticmethod
    def header() -> list[str]:
        return ["bin", "bin_start_s", "bin_end_s", "label", "bouts", "frames", "total_s",
                "percent"]  # fmt: skip

    @classmethod
    def of(cls, row: BinBudget) -> BinRow:
        return cls(row.bin, row.start_s, row.end_s, row.label, row.bouts, row.frames,
                   row.total_s, row.percent)  # fmt: skip

    def cells(self) -> list[Cell]:
        return _values(self)


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """transitions.csv: bouts of ``from_label`` followed by a bout of each label."""

    from_label: str
    counts: tuple[int, ...]

    @staticmethod
    def header(labels: Sequence[str]) -> list[str]:
        return ["from", *labels]

    def cells(self) -> list[Cell]:
        return [self.from_label, *self.counts]


BORIS_COLUMNS = (
    "Observation id",
    "Observation date",
    "Description",
    "Observation duration",
    "Observation type",
    "Source",
    "Time offset (s)",
    "Media duration (s)",
    "FPS",
    "Subject",
    "Behavior",
    "Behavioral category",
    "Behavior type",
    "Time",
    "Media file name",
    "Image index",
    "Image file path",
    "Comment",
)


@dataclass(frozen=True, slots=True)
class BorisRow:
    """One START or STOP event, in the columns of BORIS's tabular events export."""

    observation_id: str
    observation_date: str
    description: str
    observation_duration: str
    observation_type: str
    source: str
    time_offset_s: str
    media_duration_s: str
    fps: str
    subject: str
    behavior: str
    behavioral_category: str
    behavior_type: str  # START or STOP
    time: str
    media_file_name: str
    image_index: int
    image_file_path: str
    comment: str

    @staticmethod
    def header() -> list[str]:
        return list(BORIS_COLUMNS)

    def cells(self) -> list[Cell]:
        return _values(self)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
    """The one CSV writer: a header line, then one line per row; floats with 6 decimals."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(value) for value in row])


def write_frames_csv(path: Path, analysis: RecordingAnalysis) -> None:
    """frames.csv, one line a frame: the text ``write_csv`` would write for these cells (floats
    with 6 decimals, labels quoted as the csv module quotes them), formatted a line at a time
    from plain lists, since a one-hour recording has a hundred thousand lines."""
    labels = [_quoted(label) for label in analysis.labels]
    line = "%d,%.6f,%s,%s,%.6f" + ",%.6f" * len(labels) + "\n"
    probabilities = analysis.probabilities.tolist()
    starts = analysis.times.starts.tolist()
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(_quoted(name) for name in frames_header(analysis.labels)) + "\n")
        for index, (final, raw, row) in enumerate(
            zip(analysis.smoothed_labels.tolist(), analysis.raw_labels.tolist(), probabilities,
                strict=True)
        ):  # fmt: skip
            handle.write(
                line % (index, starts[index], labels[final], labels[raw], row[final], *row)
            )


def _quoted(text: str) -> str:
    """``text`` as one CSV cell, quoted the way csv.writer quotes it (only when it must be)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def bout_rows(analysis: RecordingAnalysis) -> list[BoutRow]:
    return [BoutRow.of(number, bout) for number, bout in enumerate(analysis.bouts, start=1)]


def _boris_time(seconds: float) -> str:
    """Seconds to the millisecond, rounded up, so that floor(Time x FPS), which SimBA's BORIS
    importer computes, gives back the frame the event belongs to."""
    return f"{math.ceil(seconds * 1000 - 1e-6) / 1000:.3f}"


def boris_rows(analysis: RecordingAnalysis, provenance: Provenance) -> list[BorisRow]:
    recording = analysis.recording
    created = datetime.fromisoformat(provenance.created_at.replace("Z", "+00:00"))
    description = (
        f"image-sequence-classifier {provenance.service_version}; model "
        f"{provenance.model_name} {provenance.model_version} sha256 {provenance.model_sha256}; "
        f"input sha256 {provenance.input_sha256}; parameters "
        f"{json.dumps(provenance.parameters, sort_keys=True)}; metadata "
        f"{json.dumps(provenance.metadata, sort_keys=True)}"
    )
    fps = recording.fps or (analysis.frames / analysis.duration_s)
    common = {
        "observation_id": provenance.session or Path(provenance.source_filename).stem,
        "observation_date": created.strftime("%Y-%m-%d %H:%M:%S.")
        + f"{created.microsecond // 1000:03d}",
        "description": description,
        "observation_duration": f"{analysis.duration_s:.3f}",
        "observation_type": "Media file(s)",
        "source": f"player #1:{recording.filename}",
        "time_offset_s": "0.0",
        "media_duration_s": f"{analysis.duration_s:.3f}",
        "fps": f"{fps:.3f}",
        "subject": provenance.subject or "",
        "behavioral_category": "",
        "media_file_name": recording.filename,
        "image_file_path": "NA",
        "comment": "",
    }
    rows = []
    for bout in analysis.bouts:
        rows.append(BorisRow(behavior=bout.label, behavior_type="START",
                             time=_boris_time(bout.start_s), image_index=bout.start_frame,
                             **common))  # fmt: skip
        rows.append(BorisRow(behavior=bout.label, behavior_type="STOP",
                             time=_boris_time(bout.end_s), image_index=bout.end_frame + 1,
                             **common))  # fmt: skip
    return rows


def recording_document(analysis: RecordingAnalysis, provenance: Provenance) -> dict[str, Any]:
    recording = analysis.recording
    return {
        "filename": recording.filename,
        "frames": recording.frames,
        "fps": recording.fps,
        "duration_s": recording.duration_s,
        "width": recording.width,
        "height": recording.height,
        "codec": recording.codec,
        "sha256": provenance.input_sha256,
    }


def result_document(analysis: RecordingAnalysis, provenance: Provenance) -> dict[str, Any]:
    """result.json: the summary of the recording, model, parameters, budget, transitions, bouts."""
    document: dict[str, Any] = {
        "provenance": provenance.to_dict(),
        "recording": recording_document(analysis, provenance),
        "model": analysis.model.to_dict(),
        "parameters": {**analysis.parameters.to_dict(), "method": analysis.method},
        "frames": analysis.frames,
        "duration_s": analysis.duration_s,
        "windows": analysis.windows,
        "analysis_seconds": round(analysis.seconds, 3),
        "time_budget": [_mapping(BudgetRow.of(row)) for row in analysis.budget],
        "transitions": {"labels": list(analysis.labels), "counts": analysis.transitions},
        "bouts": [_mapping(row) for row in bout_rows(analysis)],
    }
    if analysis.bins is not None:
        document["time_budget_bins"] = [_mapping(BinRow.of(row)) for row in analysis.bins]
    return document


def default_job_document(analysis: RecordingAnalysis, provenance: Provenance) -> dict[str, Any]:
    """job.json for results made without a job (the command line): what a job would record."""
    return {
        "id": None,
        "status": "succeeded",
        "created_at": provenance.created_at,
        "subject": provenance.subject,
        "session": provenance.session,
        "metadata": provenance.metadata,
        "recording": recording_document(analysis, provenance),
        "model": analysis.model.to_dict(),
        "parameters": analysis.parameters.to_dict(),
        "error": None,
    }


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_results(
    analysis: RecordingAnalysis,
    provenance: Provenance,
    out_dir: Path,
    *,
    job: Mapping[str, Any] | None = None,
) -> list[str]:
    """Write every result file into ``out_dir``; returns their names (results.zip last).

    ``job`` is the job document to put into the zip as job.json (the command line, having no
    job, gets a summary of the same shape).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = analysis.labels
    names: list[str] = []

    def table(name: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
        write_csv(out_dir / name, header, rows)
        names.append(name)

    write_frames_csv(out_dir / "frames.csv", analysis)
    names.append("frames.csv")
    table("bouts.csv", BoutRow.header(), (row.cells() for row in bout_rows(analysis)))
    table("time_budget.csv", BudgetRow.header(),
          (BudgetRow.of(row).cells() for row in analysis.budget))  # fmt: skip
    table("transitions.csv", TransitionRow.header(labels),
          (TransitionRow(label, tuple(counts)).cells()
           for label, counts in zip(labels, analysis.transitions, strict=True)))  # fmt: skip
    table("boris.csv", BorisRow.header(),
          (row.cells() for row in boris_rows(analysis, provenance)))  # fmt: skip
    if analysis.bins is not None:
        table(BINS_FILE, BinRow.header(), (BinRow.of(row).cells() for row in analysis.bins))
    (out_dir / "ethogram.png").write_bytes(render_ethogram(analysis, provenance))
    names.append("ethogram.png")
    (out_dir / "result.json").write_text(
        _json(result_document(analysis, provenance)), encoding="utf-8"
    )
    names.append("result.json")
    # Deflate level 1: for a one-hour recording 0.06 s instead of 0.25 s at the default level 6,
    # for a zip a quarter larger (2.9 MB against 2.3; frames.csv is most of it).
    with zipfile.ZipFile(
        out_dir / "results.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
    ) as archive:
        for name in names:
            archive.write(out_dir / name, arcname=name)
        archive.writestr("job.json", _json(job or default_job_document(analysis, provenance)))
        archive.writestr("provenance.json", _json(provenance.to_dict()))
    names.append("results.zip")
    return names
