"""`python -m classifier`: subcommands, `analyze` on videos and image folders, reruns, failures."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.cli import ProgressBar, main
from classifier.recordings.exports import RESULT_FILES
from tests.recordings.conftest import LONG_FRAMES
from tests.recordings.media import write_frames

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def inputs(
    short_recording: tuple[Path, np.ndarray, list[str]], tmp_path: Path
) -> tuple[Path, Path]:
    """The short H.264 recording, and a folder of 48 of its frames as PNG files."""
    video, frames, _ = short_recording
    folder = tmp_path / "seq"
    write_frames(folder, frames[:48])
    return video, folder


def _python_m_classifier(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "classifier", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


def test_help_lists_the_subcommands_instead_of_starting_the_server() -> None:
    result = _python_m_classifier("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "analyze" in result.stdout
    assert "keys" in result.stdout
    keys = _python_m_classifier("keys", "--help")
    assert keys.returncode == 0
    for action in ("add", "rotate", "list", "revoke"):
        assert action in keys.stdout
    analyze = _python_m_classifier("analyze", "--help")
    assert analyze.returncode == 0
    for option in ("--out", "--model-dir", "--stride", "--min-bout-ms", "--bin-s", "--fps"):
        assert option in analyze.stdout


def test_analyze_writes_one_result_folder_per_recording(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, folder = inputs
    out = tmp_path / "out"
    code = main(["analyze", str(video), str(folder), "--out", str(out), "--fps", "30",
                 "--min-bout-ms", '{"walk": 100}', "--bin-s", "5", "--subject", "m1"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["cage", "seq"]
    for name, frames in (("cage", 360), ("seq", 48)):
        written = {p.name for p in (out / name).iterdir()}
        assert written == {*RESULT_FILES, "time_budget_bins.csv"}
        result = json.loads((out / name / "result.json").read_text())
        assert result["frames"] == frames
        assert result["parameters"] == {
            "stride": 1,
            "min_bout_ms": {"walk": 100},
            "bin_s": 5.0,
            "method": "sequence_head",
        }
        assert result["provenance"]["subject"] == "m1"
        assert f"{name}: {frames} frames" in captured.out
    assert "cage: 100% (360 frames" in captured.err  # the progress bar (not a terminal: lines)
    assert json.loads((out / "seq" / "result.json").read_text())["recording"]["fps"] == 30.0


def test_a_rerun_skips_complete_recordings_and_redoes_changed_ones(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, folder = inputs
    out = tmp_path / "out"
    assert main(["analyze", str(video), "--out", str(out)]) == 0
    first = (out / "cage" / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["analyze", str(video), str(folder), "--out", str(out), "--fps", "30"]) == 0
    captured = capsys.readouterr()
    assert "cage: skipped, already complete" in captured.out
    assert "seq: 48 frames" in captured.out
    assert (out / "cage" / "result.json").stat().st_mtime_ns == first
    # Other parameters are another analysis: the folder is replaced, not skipped.
    assert main(["analyze", str(video), "--out", str(out), "--stride", "4"]) == 0
    assert "cage: 360 frames" in capsys.readouterr().out
    assert json.loads((out / "cage" / "result.json").read_text())["parameters"]["stride"] == 4
    assert not list(out.glob("*.partial"))


def test_failed_recordings_are_named_with_their_reason_and_the_rest_are_done(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, folder = inputs
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    out = tmp_path / "out"
    code = main(["analyze", str(notes), str(video), str(folder), str(tmp_path / "gone.avi"),
                 "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "analyze: 3 of 4 recording(s) failed:" in captured.err
    assert f"{notes}: notes.mp4 is not a video FFmpeg can open" in captured.err
    assert f"{folder}: an image folder needs --fps" in captured.err
    assert f"{tmp_path / 'gone.avi'}: no such file or folder" in captured.err
    assert (out / "cage" / "results.zip").is_file()
    assert not (out / "notes").exists()


def test_parameters_that_do_not_fit_the_model_stop_before_any_work(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, _ = inputs
    assert main(["analyze", str(video), "--out", str(tmp_path / "o"), "--stride", "30"]) == 2
    assert "stride 30 is outside 1..24" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    code = main(["analyze", str(video), "--out", str(tmp_path / "o"), "--min-bout-ms",
                 '{"sleep": 5}'])  # fmt: skip
    assert code == 2
    assert "unknown label(s) sleep" in capsys.readouterr().err


def test_a_long_recording_gives_the_same_files_in_stretches_as_in_order(
    keyframed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = {}
    for processes in ("1", "2"):
        out = tmp_path / f"p{processes}"
        assert main(["analyze", str(keyframed), "--out", str(out), "--processes", processes]) == 0
        written[processes] = out / "cage"
    assert f"cage: {LONG_FRAMES} frames" in capsys.readouterr().out
    # boris.csv and result.json carry when they were made; the rest must match to the byte.
    for name in ("frames.csv", "bouts.csv", "time_budget.csv", "transitions.csv"):
        one, two = (written[p] / name for p in ("1", "2"))
        assert one.read_bytes() == two.read_bytes(), name


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_bad_processes_value_is_a_usage_error(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["analyze", str(inputs[0]), "--out", str(tmp_path), "--processes", value])
    assert stopped.value.code == 2
    assert "--processes" in capsys.readouterr().err


def test_a_bad_min_bout_value_is_a_usage_error(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["analyze", str(inputs[0]), "--out", str(tmp_path), "--min-bout-ms", "long"])
    assert stopped.value.code == 2
    assert "neither a number nor a JSON object" in capsys.readouterr().err


def test_a_model_that_does_not_load_exits_2(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(inputs[0]), "--out", str(tmp_path), "--model-dir", str(tmp_path)])
    assert code == 2
    assert "analyze: cannot load the model: no model manifest at" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_bar_is_redrawn_in_place() -> None:
    stream = _Terminal()
    bar = ProgressBar("cage", stream)
    bar(0, 100)
    bar(100, 100)
    drawn = stream.getvalue()
    assert drawn.startswith("\rcage [------------------------------]   0% 0 frames")
    assert "\rcage [##############################] 100% 100 frames" in drawn
    assert drawn.endswith("\n")
    assert drawn.count("\n") == 1
