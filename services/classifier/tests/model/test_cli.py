"""`python -m behaviour_clips`: clips as PNG folders, recordings with labels.csv."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import behaviour_clips
from behaviour_clips import generate_clip, generate_recording
from behaviour_clips.cli import main


def _read_frames(folder: Path, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO((folder / n).read_bytes()))) for n in names])


def test_clip_command_writes_24_pngs_of_the_clip(tmp_path: Path) -> None:
    assert main(["clip", "--label", "walk", "--seed", "3", "--out", str(tmp_path)]) == 0
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [f"frame_{index:02d}.png" for index in range(24)]
    assert np.array_equal(_read_frames(tmp_path, names), generate_clip("walk", 3))


def test_recording_command_writes_frames_and_labels(tmp_path: Path) -> None:
    assert main(["recording", "--seed", "1", "--frames", "150", "--out", str(tmp_path)]) == 0
    with (tmp_path / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    frames, labels = generate_recording(1, 150)
    assert [row["label"] for row in rows] == labels
    assert [int(row["frame"]) for row in rows] == list(range(150))
    assert rows[0]["file"] == "frame_000.png"
    pngs = sorted(path.name for path in tmp_path.glob("*.png"))
    assert len(pngs) == 150
    assert np.array_equal(_read_frames(tmp_path, [row["file"] for row in rows]), frames)


def test_contact_sheet_command_writes_one_row_per_class(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    assert main(["contact-sheet", "--seed", "0", "--out", str(out)]) == 0
    with Image.open(out) as sheet:
        assert sheet.size == (120 + 6 * (128 + 4), 8 * (128 + 4) + 4)


def test_unknown_label_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["clip", "--label", "sleep", "--seed", "1", "--out", "unused"])
    assert stopped.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_value_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clip", "--label", "walk", "--seed", "-4", "--out", str(tmp_path)]) == 2
    assert "seed must be >= 0" in capsys.readouterr().out


def test_module_runs_as_a_program(tmp_path: Path) -> None:
    source_root = Path(behaviour_clips.__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": str(source_root)}
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "behaviour_clips",
            "clip",
            "--label",
            "rear",
            "--seed",
            "2",
            "--frames",
            "4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"frame_{index:02d}.png" for index in range(4)
    ]
