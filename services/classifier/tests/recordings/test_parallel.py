"""A recording decoded and encoded in stretches by worker processes (recordings/parallel.py):
the same frames, times and labels as decoding it in order, the same errors, and no worker left
behind, whether the analysis ends, fails, is cancelled or its process is killed."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from classifier.core.errors import (
    AnalysisCancelledError,
    CorruptRecordingError,
    MixedFrameSizesError,
    RecordingError,
)
from classifier.model.runtime import SequenceModel
from classifier.recordings.analysis import AnalysisParameters, RecordingAnalysis, analyse_recording
from classifier.recordings.frame_labels import SEQUENCE_HEAD, WINDOW_MEAN
from classifier.recordings.parallel import MIN_STRETCH_FRAMES, plan_stretches
from classifier.recordings.source import (
    FrameSource,
    ImageSequenceSource,
    SequenceStretch,
    VideoSource,
    VideoStretch,
)
from tests.recordings.conftest import LONG_FRAMES
from tests.recordings.media import encode_video, garble, png_bytes, truncate
from tests.support.server import SRC


def _children() -> set[int]:
    """This process's child processes, from /proc."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            listed = (task / "children").read_text()
        except FileNotFoundError:  # a thread (of another test's client, say) that just ended
            continue
        pids.update(int(pid) for pid in listed.split())
    return pids


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _both(
    source_of: Callable[[], FrameSource], model: SequenceModel, method: str | None = None
) -> tuple[RecordingAnalysis, RecordingAnalysis]:
    """The same recording analysed in order (1 process) and in stretches (2)."""
    before = _children()
    runs = [
        analyse_recording(source_of(), model, AnalysisParameters(), method=method, processes=n)
        for n in (1, 2)
    ]
    assert _children() == before, "a worker process outlived the analysis"
    return runs[0], runs[1]


def _errors(source_of: Callable[[], FrameSource], model: SequenceModel) -> list[RecordingError]:
    """The errors analysing the same recording in order (1 process) and in stretches (2) gave."""
    errors: list[RecordingError] = []
    before = _children()
    for processes in (1, 2):
        with pytest.raises(RecordingError) as caught:
            analyse_recording(source_of(), model, AnalysisParameters(), processes=processes)
        errors.append(caught.value)
    assert _children() == before, "a worker process outlived the analysis"
    return errors


def _assert_same(in_order: RecordingAnalysis, stretched: RecordingAnalysis) -> None:
    assert in_order.stretches == 0
    assert stretched.stretches >= 2
    assert stretched.frames == in_order.frames
    np.testing.assert_array_equal(stretched.times.starts, in_order.times.starts)
    assert stretched.times.duration_s == in_order.times.duration_s
    # The encoder sees the same pixels in other batches: equal to the last bits here, but
    # onnxruntime promises no more than float rounding across batch sizes.
    np.testing.assert_allclose(stretched.probabilities, in_order.probabilities, atol=1e-6)
    np.testing.assert_array_equal(stretched.raw_labels, in_order.raw_labels)
    assert stretched.bouts == in_order.bouts
    assert stretched.budget == in_order.budget
    assert stretched.recording == in_order.recording
    assert stretched.windows == in_order.windows


@pytest.mark.parametrize("method", [SEQUENCE_HEAD, WINDOW_MEAN])
def test_a_video_in_stretches_gives_what_decoding_it_in_order_gives(
    keyframed: Path, bundled_model: SequenceModel, method: str
) -> None:
    in_order, stretched = _both(lambda: VideoSource(keyframed), bundled_model, method=method)
    _assert_same(in_order, stretched)
    assert stretched.frames == LONG_FRAMES


def test_stretches_start_at_keyframes_and_cover_the_video(keyframed: Path) -> None:
    source = VideoSource(keyframed)
    stretches = source.stretches(4)
    assert stretches is not None
    assert len(stretches) == 4
    assert all(isinstance(stretch, VideoStretch) for stretch in stretches)
    starts = [stretch.start for stretch in stretches]
    ends = [stretch.end for stretch in stretches]
    assert starts[0] is None
    assert ends[-1] is None
    assert starts[1:] == ends[:-1]  # each begins where the one before ends
    with av.open(str(keyframed)) as container:
        stream = container.streams.video[0]
        keyframes = {packet.pts for packet in container.demux(stream) if packet.is_keyframe}
    assert set(starts[1:]) <= keyframes
    assert len(keyframes) > len(stretches)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("open-gop.mp4", "keyint=60:min-keyint=60:open-gop=1"),
        ("no-b-frames.mp4", "keyint=75:bframes=0"),
        ("scenecut-keyframes.mp4", "keyint=250:min-keyint=10"),
    ],
)
def test_other_keyframe_layouts_give_the_same_result(
    long_recording: tuple[np.ndarray, list[str]],
    bundled_model: SequenceModel,
    tmp_path: Path,
    name: str,
    params: str,
) -> None:
    path = encode_video(tmp_path / name, long_recording[0], x264_params=params)
    _assert_same(*_both(lambda: VideoSource(path), bundled_model))


def test_a_variable_frame_rate_video_keeps_its_times(
    long_recording: tuple[np.ndarray, list[str]], bundled_model: SequenceModel, tmp_path: Path
) -> None:
    gaps = np.random.default_rng(0).choice([1 / 30, 1 / 25, 1 / 15], size=LONG_FRAMES)
    times = np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    path = encode_video(
        tmp_path / "vfr.mp4", long_recording[0], times_s=list(times), x264_params="keyint=90"
    )
    in_order, stretched = _both(lambda: VideoSource(path), bundled_model)
    _assert_same(in_order, stretched)
    np.testing.assert_allclose(stretched.times.starts, times, atol=1e-3)


def test_a_video_with_one_keyframe_is_decoded_in_order(
    long_recording: tuple[np.ndarray, list[str]], bundled_model: SequenceModel, tmp_path: Path
) -> None:
    path = encode_video(
        tmp_path / "one-gop.mp4", long_recording[0], x264_params="keyint=infinite:scenecut=0"
    )
    assert VideoSource(path).stretches(4) is None
    analysis = analyse_recording(
        VideoSource(path), bundled_model, AnalysisParameters(), processes=2
    )
    assert (analysis.stretches, analysis.frames) == (0, LONG_FRAMES)


def test_a_damaged_video_fails_as_decoding_it_in_order_fails(
    keyframed: Path, bundled_model: SequenceModel, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(keyframed.read_bytes())
    garble(damaged, at=0.7, length=4000)
    errors = _errors(lambda: VideoSource(damaged), bundled_model)
    assert isinstance(errors[0], CorruptRecordingError)
    assert [(type(e), e.detail) for e in errors[1:]] == [(type(errors[0]), errors[0].detail)]
    assert "damaged.mp4" in errors[0].detail


def test_a_truncated_video_fails_as_decoding_it_in_order_fails(
    long_recording: tuple[np.ndarray, list[str]], bundled_model: SequenceModel, tmp_path: Path
) -> None:
    """Its index (written first) lists every frame; the frames after the cut are gone."""
    whole = encode_video(
        tmp_path / "whole.mp4", long_recording[0], faststart=True, x264_params="keyint=90"
    )
    cut = truncate(whole, 0.6, tmp_path / "cut.mp4")
    assert VideoSource(cut).stretches(2) is not None  # the cut is in the last stretch
    errors = _errors(lambda: VideoSource(cut), bundled_model)
    assert isinstance(errors[0], CorruptRecordingError)
    assert f"the container lists {LONG_FRAMES} frames" in errors[0].detail
    assert (type(errors[1]), errors[1].detail) == (type(errors[0]), errors[0].detail)


@pytest.fixture(scope="module")
def pack(
    long_recording: tuple[np.ndarray, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[int, int]]]:
    """The recording's frames as PNGs in one pack file, as an upload stores them."""
    path = tmp_path_factory.mktemp("pack") / "frames.pack"
    spans = []
    with path.open("wb") as handle:
        for frame in long_recording[0]:
            data = png_bytes(frame)
            spans.append((handle.tell(), len(data)))
            handle.write(data)
    return path, spans


def _sequence(pack: tuple[Path, list[tuple[int, int]]]) -> ImageSequenceSource:
    path, spans = pack
    names = [f"frame_{index:05d}.png" for index in range(len(spans))]
    return ImageSequenceSource([path] * len(spans), names, 30.0, spans=spans)


def test_an_image_sequence_in_stretches_gives_what_decoding_it_in_order_gives(
    pack: tuple[Path, list[tuple[int, int]]], bundled_model: SequenceModel
) -> None:
    stretches = _sequence(pack).stretches(3)
    assert stretches == [
        SequenceStretch(0, 1000),
        SequenceStretch(1000, 2000),
        SequenceStretch(2000, 3000),
    ]
    _assert_same(*_both(lambda: _sequence(pack), bundled_model))


def test_a_bad_frame_late_in_a_sequence_fails_naming_it_as_in_order(
    pack: tuple[Path, list[tuple[int, int]]], bundled_model: SequenceModel, tmp_path: Path
) -> None:
    path, spans = pack
    odd = png_bytes(np.zeros((32, 32), np.uint8))  # another camera's size, at frame 2600
    copy = tmp_path / "frames.pack"
    copy.write_bytes(path.read_bytes() + odd)
    spans = [*spans[:2600], (path.stat().st_size, len(odd)), *spans[2601:]]
    names = [f"frame_{index:05d}.png" for index in range(len(spans))]

    def source() -> ImageSequenceSource:
        return ImageSequenceSource([copy] * len(spans), names, 30.0, spans=spans)

    errors = _errors(source, bundled_model)
    assert all(isinstance(error, MixedFrameSizesError) for error in errors)
    details = [error.detail for error in errors]
    assert details[0] == details[1]
    assert details[0].startswith("frame 2600 (frame_02600.png) is 32x32")


def test_only_long_recordings_of_a_model_with_parts_are_cut(
    keyframed: Path,
    short_recording: tuple[Path, np.ndarray, list[str]],
    bundled_model: SequenceModel,
) -> None:
    assert plan_stretches(VideoSource(keyframed), 1) is None
    assert plan_stretches(VideoSource(short_recording[0]), 2) is None  # 360 frames
    assert 2 * MIN_STRETCH_FRAMES <= LONG_FRAMES
    plan = plan_stretches(VideoSource(keyframed), 2)
    assert plan is not None
    assert len(plan) == 2
    own = dataclasses.replace(bundled_model, parts=None)  # a user's model: whole-clip only
    analysis = analyse_recording(VideoSource(keyframed), own, AnalysisParameters(), processes=2)
    assert analysis.stretches == 0


def test_a_cancelled_analysis_stops_its_workers(
    keyframed: Path, bundled_model: SequenceModel
) -> None:
    before = _children()
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)

    def cancelled() -> bool:
        return bool(seen)  # as soon as the workers have sent anything

    with pytest.raises(AnalysisCancelledError, match="cancelled after"):
        analyse_recording(
            VideoSource(keyframed),
            bundled_model,
            AnalysisParameters(),
            progress=progress,
            cancelled=cancelled,
            processes=2,
        )
    assert seen
    assert seen[-1] < LONG_FRAMES
    assert _children() == before


def test_workers_die_with_a_killed_analysing_process(keyframed: Path, tmp_path: Path) -> None:
    """SIGKILL leaves the workers no chance to be told: the kernel ends them (PDEATHSIG)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from classifier.core.config import DEFAULT_MODEL_DIR
        from classifier.model.runtime import load_model
        from classifier.recordings.analysis import AnalysisParameters, analyse_recording
        from classifier.recordings.source import VideoSource

        def progress(done, total):
            print("progress", flush=True)
            time.sleep(3600)  # held here, workers running, until killed

        analyse_recording(VideoSource(Path({str(keyframed)!r})), load_model(DEFAULT_MODEL_DIR),
                          AnalysisParameters(), progress=progress, processes=2)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "progress"
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [int(pid) for pid in children]
        assert len(workers) == 2
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
