"""`make evaluate`: the served model on held-out synthetic recordings, through the service's path.

Each recording comes from ``behaviour_clips.generate_recording`` at 240x240 (what a camera
gives), is encoded as H.264 (crf 23) with PyAV, and is analysed by ``analyse_recording`` with
``VideoSource``, the code the jobs and the command line run. The generated videos are cached
under .cache/evaluation/ (rendering 9000 frames at 240x240 takes minutes). The scores are
printed and written into docs/model-card.md between its recording-metrics markers.

Held-out seeds: recordings draw from their own random stream (RECORDING_STREAM), and training
and tuning never generated a recording at all (they used clips: held-out clip seeds below
500,000, validation clips from 500,000, training clips from 1,000,000). Seeds 9000 upwards
are also unused by the tests (which use recording seeds below 100), so nothing was ever
chosen by looking at them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from behaviour_clips import generate_recording
from classifier.model.manifest import InputSpec
from classifier.model.runtime import SequenceModel, load_model
from classifier.pipeline.decode import conform_image
from classifier.recordings.analysis import AnalysisParameters, analyse_recording
from classifier.recordings.evaluation import OVERLAPS, SetScore, score_recording, score_set
from classifier.recordings.source import DecodedFrame, RecordingInfo, VideoSource

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODEL = ROOT / "services/classifier/models/rodent-behaviour"
DEFAULT_CACHE = ROOT / ".cache/evaluation"
MODEL_CARD = ROOT / "docs/model-card.md"
START_MARKER = "<!-- recording-metrics:start (written by training/evaluate.py) -->"
END_MARKER = "<!-- recording-metrics:end -->"
FPS = 30


def encode_h264(frames: np.ndarray, path: Path, *, crf: int = 23, fps: int = FPS) -> None:
    """Grayscale frames to an H.264 MP4 (yuv420p), as a camera's recorder would write them."""
    height, width = frames.shape[1:3]
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.replace(path)


def cached_recording(seed: int, frames: int, size: int, cache: Path) -> tuple[Path, list[str]]:
    """The recording's MP4 and true labels, generated and encoded once."""
    cache.mkdir(parents=True, exist_ok=True)
    video = cache / f"recording-{seed}-{frames}f-{size}px-crf23.mp4"
    labels_file = video.with_suffix(".labels.json")
    if video.is_file() and labels_file.is_file():
        return video, json.loads(labels_file.read_text())
    started = time.perf_counter()
    pixels, labels = generate_recording(seed, frames, size=size)
    rendered = time.perf_counter() - started
    encode_h264(pixels, video)
    del pixels
    labels_file.write_text(json.dumps(labels))
    print(
        f"  seed {seed}: rendered {frames} frames at {size}x{size} in {rendered:.0f} s, "
        f"encoded in {time.perf_counter() - started - rendered:.0f} s",
        flush=True,
    )
    return video, labels


@dataclass
class ArraySource:
    """Raw generated frames (no video codec), for the reference row beside the H.264 one."""

    pixels: np.ndarray
    fps: float = FPS

    @property
    def info(self) -> RecordingInfo:
        n, height, width = self.pixels.shape[:3]
        return RecordingInfo("raw", None, self.fps, n / self.fps, width, height, "raw", n)

    def frames(self, spec: InputSpec) -> Iterator[DecodedFrame]:
        for index, frame in enumerate(self.pixels):
            image = Image.fromarray(frame)
            yield DecodedFrame(index, index / self.fps, conform_image(image, spec), 1 / self.fps)


def evaluate(
    model: SequenceModel,
    seeds: list[int],
    frames: int,
    size: int,
    parameters: AnalysisParameters,
    cache: Path,
    *,
    raw: bool,
) -> tuple[SetScore, float, SetScore | None]:
    labels = model.manifest.labels
    index = {label: k for k, label in enumerate(labels)}
    scores, raw_scores, analysis_seconds = [], [], 0.0
    for seed in seeds:
        video, truth_names = cached_recording(seed, frames, size, cache)
        truth = np.array([index[name] for name in truth_names])
        started = time.perf_counter()
        analysis = analyse_recording(VideoSource(video), model, parameters)
        analysis_seconds += time.perf_counter() - started
        if analysis.frames != len(truth):
            raise SystemExit(f"seed {seed}: decoded {analysis.frames} frames of {len(truth)}")
        score = score_recording(analysis.smoothed_labels, truth, len(labels))
        scores.append(score)
        line = f"  seed {seed}: accuracy {score.correct / score.frames:.2%}, edit {score.edit:.1f}"
        if raw:
            pixels, _ = generate_recording(seed, frames, size=64)
            raw_analysis = analyse_recording(ArraySource(pixels), model, parameters)
            raw_score = score_recording(raw_analysis.smoothed_labels, truth, len(labels))
            raw_scores.append(raw_score)
            line += f"; raw 64x64 {raw_score.correct / raw_score.frames:.2%}"
        print(line, flush=True)
    return score_set(scores), analysis_seconds, score_set(raw_scores) if raw_scores else None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def markdown(
    result: SetScore,
    raw: SetScore | None,
    labels: tuple[str, ...],
    seeds: list[int],
    frames: int,
    size: int,
    parameters: AnalysisParameters,
    seconds: float,
) -> str:
    minutes = frames / FPS / 60
    lines = [
        f"Held-out recordings: {result.recordings} of {frames:,} frames ({minutes:.0f} minutes "
        f"at {FPS} fps), generator seeds {seeds[0]}-{seeds[-1]}, rendered at {size}x{size}, "
        f"encoded H.264 crf 23 with PyAV and decoded by the service's own path "
        f"(`VideoSource`, `analyse_recording`). Parameters: stride {parameters.stride}, "
        f"min_bout_ms {parameters.min_bout_ms or 'off'}. Analysis took {seconds:.0f} s for "
        f"{result.frames:,} frames ({result.frames / seconds:.0f} frames/s) on this machine.",
        "",
        "| metric | H.264 240x240 | target |" + (" raw 64x64 frames |" if raw else ""),
        "|---|---|---|" + ("---|" if raw else ""),
    ]

    def row(name: str, value: str, target: str, raw_value: str) -> None:
        lines.append(f"| {name} | {value} | {target} |" + (f" {raw_value} |" if raw else ""))

    row("frame accuracy", _pct(result.accuracy), ">= 95%", _pct(raw.accuracy if raw else None))
    row("macro F1 (frames)", f"{result.macro_f1:.3f}", ">= 0.90",
        f"{raw.macro_f1:.3f}" if raw else "")  # fmt: skip
    row("segmental edit score", f"{result.edit:.1f}", "", f"{raw.edit:.1f}" if raw else "")
    for k in OVERLAPS:
        target = ">= 85" if k == 0.25 else ""
        row(f"F1@{int(k * 100)}", f"{result.f1_at[k]:.1f}", target,
            f"{raw.f1_at[k]:.1f}" if raw else "")  # fmt: skip
    lines += [
        "",
        "Per label (H.264): frame F1, and the time-budget error (|predicted - true| share of "
        "the recording, in percentage points), mean and worst over the recordings:",
        "",
        "| label | F1 | budget error, mean | budget error, worst |",
        "|---|---|---|---|",
    ]
    for k, label in enumerate(labels):
        f1 = result.label_f1[k]
        lines.append(
            f"| {label} | {'n/a' if f1 is None else f'{f1:.3f}'} | "
            f"{result.budget_error_mean[k]:.2f} | {result.budget_error_max[k]:.2f} |"
        )
    lines += [
        "",
        "Confusion matrix over all frames (H.264; rows: true label, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " | recall |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    for k, label in enumerate(labels):
        counts = result.confusion[k]
        total = int(counts.sum())
        recall = f"{counts[k] / total:.1%}" if total else "n/a"
        lines.append(
            f"| **{label}** | " + " | ".join(str(int(c)) for c in counts) + f" | {recall} |"
        )
    return "\n".join(lines)


def write_model_card(section: str, path: Path = MODEL_CARD) -> None:
    text = path.read_text(encoding="utf-8")
    if START_MARKER not in text or END_MARKER not in text:
        raise SystemExit(f"{path} lacks the markers {START_MARKER!r} and {END_MARKER!r}")
    before, rest = text.split(START_MARKER, 1)
    _, after = rest.split(END_MARKER, 1)
    path.write_text(f"{before}{START_MARKER}\n\n{section}\n\n{END_MARKER}{after}", encoding="utf-8")


def _min_bout(value: str | None) -> float | dict[str, float] | None:
    if value is None:
        return None
    return json.loads(value) if value.lstrip().startswith("{") else float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--first-seed", type=int, default=9000)
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--frames", type=int, default=9000)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--min-bout-ms", default=None, help="a number, or JSON label -> ms")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--raw", action="store_true", help="also score raw 64x64 frames")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the card")
    args = parser.parse_args(argv)
    model = load_model(args.model_dir)
    parameters = AnalysisParameters(stride=args.stride, min_bout_ms=_min_bout(args.min_bout_ms))
    seeds = list(range(args.first_seed, args.first_seed + args.recordings))
    print(f"evaluating {model.name} {model.version} on seeds {seeds[0]}-{seeds[-1]}", flush=True)
    result, seconds, raw = evaluate(
        model, seeds, args.frames, args.size, parameters, args.cache, raw=args.raw
    )
    section = markdown(
        result, raw, model.manifest.labels, seeds, args.frames, args.size, parameters, seconds
    )
    print(section)
    if not args.no_write:
        write_model_card(section)
        print(f"wrote {MODEL_CARD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
