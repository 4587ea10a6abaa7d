"""`make bench-recording`: a recording's analysis against its decode floor and the naive pipeline.

Makes its input once (cached under .cache/bench-recording/): generated recordings
(``behaviour_clips.generate_recording``) of 10 minutes (18,000 frames at 30 fps) rendered at
64x64 and scaled to 640x480 while encoding, H.264 yuv420p crf 23; the same 10 minutes at 64x64
(the memory baseline); and 60 minutes (108,000 frames) at 64x64, as H.264 and as a PNG folder.
Then measures, input by input, in alternating rounds, the decode floor, decoding plus
conversion, the straightforward pipeline, the service over HTTP and ``python -m classifier
analyze``, and writes the table into docs/benchmarks.md between its recordings markers (after
each input). Exits 1 when a target fails or was not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

from behaviour_clips import generate_recording
from bench.harness import ROOT, bench_environment, process, tree_rss_kib, wait_ready
from bench.report import cpu_model
from classifier.jobs.analysis_process import CHILD_NICENESS
from classifier.model.runtime import SequenceModel, load_model
from classifier.pipeline.decode import DecodeLimits, decode_frame
from classifier.pipeline.upload import UploadedFrame
from classifier.recordings.scoring import WholeClipScorer
from classifier.recordings.source import ImageSequenceSource, VideoSource

CACHE = ROOT / ".cache" / "bench-recording"
MODEL_DIR = ROOT / "services" / "classifier" / "models" / "rodent-behaviour"
REPORT = ROOT / "docs" / "benchmarks.md"
MARK_START = "<!-- recordings:start (written by bench/recording.py) -->"
MARK_END = "<!-- recordings:end -->"
FPS = 30
SHORT, LONG = 18_000, 108_000
SEED_SHORT, SEED_LONG = 9_100, 9_101  # unused by the tests and by make evaluate
CPUS = os.cpu_count() or 1
LIMITS = DecodeLimits(max_frame_pixels=4096 * 4096)


# --- inputs --------------------------------------------------------------------------------------
def _encode(path: Path, frames: np.ndarray, width: int, height: int) -> None:
    """H.264 yuv420p crf 23, preset veryfast (what a lab camera writes), each small frame scaled
    while encoding."""
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}  # a camera encodes in real time
        for pixels in frames:
            small = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="gray")
            frame = small.reformat(width, height, format="yuv420p", interpolation="BICUBIC")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)


def _pngs(folder: Path, frames: np.ndarray) -> None:
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    for index, pixels in enumerate(frames):
        Image.fromarray(pixels).save(partial / f"frame_{index:06d}.png")
    partial.rename(folder)


@dataclass(frozen=True)
class Input:
    key: str
    title: str
    path: Path
    frames: int
    kind: str  # "video" or "sequence"

    @property
    def realtime_s(self) -> float:
        return self.frames / FPS

    def png_paths(self) -> list[Path]:
        return sorted(self.path.iterdir())


def make_inputs(keys: Sequence[str] = ("640", "64s", "64v", "64p")) -> dict[str, Input]:
    CACHE.mkdir(parents=True, exist_ok=True)
    inputs = {
        "640": Input("640", "10 min, 640x480 H.264", CACHE / "10min-640x480.mp4", SHORT, "video"),
        "64s": Input("64s", "10 min, 64x64 H.264", CACHE / "10min-64x64.mp4", SHORT, "video"),
        "64v": Input("64v", "60 min, 64x64 H.264", CACHE / "60min-64x64.mp4", LONG, "video"),
        "64p": Input(
            "64p", "60 min, 64x64 PNG folder", CACHE / "60min-64x64-png", LONG, "sequence"
        ),
    }
    missing = {key for key in keys if not inputs[key].path.exists()}
    if missing & {"640", "64s"}:
        print(f"bench-recording: generating {SHORT:,} frames (once, cached)", flush=True)
        frames, _ = generate_recording(SEED_SHORT, SHORT, size=64)
        if "640" in missing:
            _encode(inputs["640"].path, frames, 640, 480)
        if "64s" in missing:
            _encode(inputs["64s"].path, frames, 64, 64)
        del frames
    if missing & {"64v", "64p"}:
        print(f"bench-recording: generating {LONG:,} frames (once, cached)", flush=True)
        frames, _ = generate_recording(SEED_LONG, LONG, size=64)
        if "64v" in missing:
            _encode(inputs["64v"].path, frames, 64, 64)
        if "64p" in missing:
            _pngs(inputs["64p"].path, frames)
        del frames
    return inputs


# --- measurements --------------------------------------------------------------------------------
@dataclass
class Sample:
    seconds: float
    frames: int
    peak_rss_kib: int = 0


def decode_floor(item: Input, model: SequenceModel) -> Sample:
    """PyAV alone, the service's threading (thread_type AUTO, one thread a core); a PNG folder:
    each file read and decoded as /v1 decodes it (already 64x64 grey: no conversion)."""
    started = time.perf_counter()
    count = 0
    if item.kind == "video":
        with av.open(str(item.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = CPUS
            for _ in container.decode(stream):
                count += 1
    else:
        for index, path in enumerate(item.png_paths()):
            decode_frame(
                UploadedFrame(index, path.name, path.read_bytes()), model.manifest.input, LIMITS
            )
            count += 1
    return Sample(time.perf_counter() - started, count)


def _source(item: Input, conversion: str) -> VideoSource | ImageSequenceSource:
    if item.kind == "video":
        return VideoSource(item.path, conversion=conversion)  # type: ignore[arg-type]
    paths = item.png_paths()
    return ImageSequenceSource(paths, [p.name for p in paths], float(FPS))


def _decode_convert(item: Input, model: SequenceModel, conversion: str) -> Sample:
    started = time.perf_counter()
    count = sum(1 for _ in _source(item, conversion).frames(model.manifest.input))
    return Sample(time.perf_counter() - started, count)


def decode_luma(item: Input, model: SequenceModel) -> Sample:
    return _decode_convert(item, model, "luma")


def decode_reference(item: Input, model: SequenceModel) -> Sample:
    return _decode_convert(item, model, "reference")


def straightforward(item: Input, model: SequenceModel) -> Sample:
    """Decode, Pillow's conversion per the manifest, the whole-clip graph on every window in
    batches of 32, per-frame means: no split model, no luma path, no overlap."""
    started = time.perf_counter()
    scorer = WholeClipScorer(model)
    count = 0
    for frame in _source(item, "reference").frames(model.manifest.input):
        scorer.add(frame.pixels)
        count += 1
    scorer.finish()
    return Sample(time.perf_counter() - started, count)


class RssSampler:
    """Peak resident memory of a process tree, sampled every 50 ms from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_rss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Bytes the benchmark's client sends at a time, as curl or httpx send a body in blocks.
SEND_BLOCK = 256 * 1024


def _blocks(pieces: Iterator[bytes], size: int = SEND_BLOCK) -> Iterator[bytes]:
    """The pieces joined into blocks of at least ``size`` bytes (the last one shorter)."""
    held: list[bytes] = []
    held_bytes = 0
    for piece in pieces:
        held.append(piece)
        held_bytes += len(piece)
        if held_bytes >= size:
            yield b"".join(held)
            held, held_bytes = [], 0
    if held:
        yield b"".join(held)


def _multipart(item: Input, boundary: str) -> Iterator[bytes]:
    """The upload, streamed: one `video` part, or a `frames` part per PNG and the fps."""
    dash = f"--{boundary}\r\n".encode()
    if item.kind == "video":
        yield (
            dash
            + (
                b'Content-Disposition: form-data; name="video"; filename="cage.mp4"\r\n'
                b"Content-Type: video/mp4\r\n\r\n"
            )
        )
        with item.path.open("rb") as handle:
            while block := handle.read(1 << 20):
                yield block
        yield b"\r\n"
    else:
        yield dash + b'Content-Disposition: form-data; name="fps"\r\n\r\n' + str(FPS).encode()
        yield b"\r\n"
        for path in item.png_paths():
            yield (
                dash
                + (
                    f'Content-Disposition: form-data; name="frames"; filename="{path.name}"\r\n'
                    "Content-Type: image/png\r\n\r\n"
                ).encode()
                + path.read_bytes()
                + b"\r\n"
            )
    yield f"--{boundary}--\r\n".encode()


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        document: dict[str, object] = json.load(answer)
        return document


def service(item: Input, model: SequenceModel) -> Sample:
    """`python -m classifier` (default settings) on loopback: upload, then poll until done."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as data:
        env = {
            **bench_environment(),
            "CLASSIFIER_PORT": str(port),
            "CLASSIFIER_MODEL_DIR": str(MODEL_DIR),
            "CLASSIFIER_DATA_DIR": data,
            "CLASSIFIER_ACCESS_LOG_STDOUT": "false",
            "CLASSIFIER_LOG_LEVEL": "warning",
        }
        log = Path(data) / "server.log"
        with process([sys.executable, "-m", "classifier"], env, log) as proc:
            wait_ready(f"{base}/health/ready", "the classifier", proc)
            sampler = RssSampler(proc.pid)
            boundary = uuid.uuid4().hex
            started = time.perf_counter()
            request = urllib.request.Request(
                f"{base}/v1/models/{model.name}/recordings",
                data=_blocks(_multipart(item, boundary)),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=600) as answer:
                job = json.load(answer)
            while job["status"] in ("queued", "running"):
                time.sleep(0.05)
                job = _get_json(f"{base}/v1/jobs/{job['id']}")
            seconds = time.perf_counter() - started
            peak = sampler.stop()
            if job["status"] != "succeeded":
                raise SystemExit(f"bench-recording: the job ended {job['status']}: {job['error']}")
            frames = int(job["recording"]["frames"])
    return Sample(seconds, frames, peak)


def command_line(item: Input, model: SequenceModel) -> Sample:
    """`python -m classifier analyze` on the same input (start-up and model load included)."""
    with tempfile.TemporaryDirectory(prefix="bench-recording-cli-") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "classifier", "analyze", str(item.path), "--out", out,
             "--model-dir", str(MODEL_DIR), "--fps", str(FPS)],
            env=bench_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        sampler = RssSampler(proc.pid)
        _, error = proc.communicate()
        seconds = time.perf_counter() - started
        peak = sampler.stop()
        if proc.returncode != 0:
            raise SystemExit(f"bench-recording: analyze failed: {error.decode()[-2000:]}")
        frames = sum(1 for _ in Path(out).rglob("frames.csv").__next__().open()) - 1
    return Sample(seconds, frames, peak)


METHODS: dict[str, tuple[str, Callable[[Input, SequenceModel], Sample]]] = {
    "floor": ("(1) decode floor", decode_floor),
    "convert": ("(2) decode + luma conversion (the service's)", decode_luma),
    "convert-ref": ("(2b) decode + Pillow conversion (reference)", decode_reference),
    "naive": ("(3) straightforward pipeline", straightforward),
    "service": ("(4) service over HTTP (upload included)", service),
    "cli": ("(5) python -m classifier analyze", command_line),
}
PLAN = {
    "640": ["floor", "convert", "convert-ref", "naive", "service", "cli"],
    "64s": ["service"],
    "64v": ["floor", "convert", "naive", "service", "cli"],
    "64p": ["floor", "naive", "service", "cli"],
}


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    #: When the input was measured (UTC), for a report assembled from several runs.
    measured: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    )

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def fps(self) -> float:
        return self.samples[0].frames / self.seconds

    @property
    def peak_mib(self) -> float:
        return max(s.peak_rss_kib for s in self.samples) / 1024


#: Methods run in this process (the service and the command line start their own).
IN_PROCESS = ("floor", "convert", "convert-ref", "naive")


@functools.cache
def _model() -> SequenceModel:
    return load_model(MODEL_DIR, intra_op_threads=CPUS)


def _measure_here(method: str, item: Input) -> Sample:
    return METHODS[method][1](item, _model())


def _lower_priority() -> None:
    os.nice(CHILD_NICENESS)


def run(
    inputs: dict[str, Input],
    rounds: int,
    rounds_long: int,
    keys: Sequence[str],
    methods_wanted: Sequence[str] = tuple(METHODS),
) -> dict[tuple[str, str], Result]:
    # (1)-(3) run in a process at the job children's niceness, so that other work on the
    # machine slows them as much as it slows the service's analysis.
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_lower_priority)  # fmt: skip
    model = _model()
    results: dict[tuple[str, str], Result] = {}
    for round_ in range(max(rounds, rounds_long)):
        for key, methods in PLAN.items():
            if key not in keys:
                continue
            item = inputs[key]
            if round_ >= (rounds_long if item.frames == LONG else rounds):
                continue
            for method in methods:
                if method not in methods_wanted:
                    continue
                if method in IN_PROCESS:
                    sample = pool.submit(_measure_here, method, item).result()
                else:
                    sample = METHODS[method][1](item, model)
                if sample.frames != item.frames:
                    raise SystemExit(
                        f"bench-recording: {method} on {item.title} saw {sample.frames} frames"
                    )
                results.setdefault((key, method), Result()).samples.append(sample)
                print(
                    f"  round {round_ + 1} {item.title:28} {method:12} {sample.seconds:7.1f} s "
                    f"{item.frames / sample.seconds:7.0f} frames/s"
                    + (
                        f" peak {sample.peak_rss_kib / 1024:.0f} MiB" if sample.peak_rss_kib else ""
                    ),
                    flush=True,
                )
    pool.shutdown()
    return results


def render(
    inputs: dict[str, Input],
    results: dict[tuple[str, str], Result],
    rounds: int,
    rounds_long: int,
    load: tuple[float, float, float],
) -> tuple[str, bool]:
    lines = [
        f"Report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {CPUS} cores "
        f"({cpu_model()}), load average before the last run {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} (these include the benchmark's own earlier inputs; the ratios that count "
        "compare methods measured in the same rounds of one input). "
        "Each row: the median over its rounds, the methods of an input alternating round by "
        "round. Decoding threads: `thread_type` AUTO, `thread_count` "
        f"{CPUS} (every core) in (1) to (3); (4) and (5) decode and encode in stretches, "
        f"{CPUS} worker processes (one a core) each decoding on one thread (see below). "
        f"(3) uses onnxruntime with {CPUS} intra-op threads; the service's processes use 1. "
        f"(1) to (3) run in a process at nice {CHILD_NICENESS}, as the service's job children "
        "do, so that other load slows both alike. Reproduce: `make bench-recording`.",
        "",
        "| input | measurement | seconds | frames/s | x real time | peak RSS | measured |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for key, methods in PLAN.items():
        item = inputs[key]
        for method in methods:
            if (key, method) not in results:
                lines.append(f"| {item.title} | {METHODS[method][0]} | not run | | | | |")
                continue
            result = results[(key, method)]
            peak = f"{result.peak_mib:.0f} MiB" if result.peak_mib else ""
            lines.append(
                f"| {item.title} | {METHODS[method][0]} | {result.seconds:.1f} | "
                f"{result.fps:,.0f} | {item.realtime_s / result.seconds:.0f}x | {peak} | "
                f"{result.measured} ({len(result.samples)} rounds) |"
            )

    def fps(key: str, method: str) -> float:
        found = results.get((key, method))
        return found.fps if found else math.nan

    def service_peak(key: str) -> float:
        found = results.get((key, "service"))
        return found.peak_mib if found else math.nan

    memory_short, memory_long = service_peak("64s"), service_peak("64v")
    growth = 100 * (memory_long / memory_short - 1)
    checks = [
        ("service >= 70% of the decode floor, 640x480 10 min",
         fps("640", "service") / fps("640", "floor"), 0.70, "{:.0%}"),
        ("service >= 2.5x the straightforward pipeline, 640x480 10 min",
         fps("640", "service") / fps("640", "naive"), 2.5, "{:.2f}x"),
        ("service >= 4x the straightforward pipeline, 64x64 60 min video",
         fps("64v", "service") / fps("64v", "naive"), 4.0, "{:.2f}x"),
        ("service >= 4x the straightforward pipeline, 64x64 60 min PNG folder",
         fps("64p", "service") / fps("64p", "naive"), 4.0, "{:.2f}x"),
    ]  # fmt: skip
    lines += ["", "| target | measured | verdict |", "|---|---:|---|"]
    passed = True
    for name, value, target, style in checks:
        ok = value >= target  # False for a measurement not run (NaN)
        passed &= ok
        shown = "not run" if math.isnan(value) else style.format(value)
        verdict = "NOT RUN" if math.isnan(value) else ("PASS" if ok else "FAIL")
        lines.append(f"| {name} | {shown} | {verdict} |")
    ok = growth <= 10
    passed &= ok
    verdict = "NOT RUN" if math.isnan(growth) else ("PASS" if ok else "FAIL")
    lines.append(
        f"| service peak RSS, 60 min within 10% of 10 min (64x64 H.264: {memory_long:.0f} vs "
        f"{memory_short:.0f} MiB) | {growth:+.1f}% | {verdict} |"
    )
    return "\n".join(lines), passed


RESULTS = CACHE / "results.json"


def _load_results() -> dict[tuple[str, str], Result]:
    if not RESULTS.exists():
        return {}
    stored = json.loads(RESULTS.read_text(encoding="utf-8"))
    return {
        (entry["input"], entry["method"]): Result(
            [Sample(**sample) for sample in entry["samples"]], entry["measured"]
        )
        for entry in stored
    }


def _save_results(results: dict[tuple[str, str], Result]) -> None:
    stored = [
        {
            "input": key,
            "method": method,
            "measured": result.measured,
            "samples": [dataclasses.asdict(sample) for sample in result.samples],
        }
        for (key, method), result in results.items()
    ]
    RESULTS.write_text(json.dumps(stored, indent=1), encoding="utf-8")


def write_report(report: str) -> None:
    text = REPORT.read_text(encoding="utf-8")
    if MARK_START not in text:
        raise SystemExit(f"bench-recording: {REPORT} has no {MARK_START!r} marker")
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    REPORT.write_text(text[:start] + "\n" + report + "\n" + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 10-minute inputs")
    parser.add_argument("--rounds-long", type=int, default=3, help="rounds of the 60-minute ones")
    parser.add_argument(
        "--only",
        default=",".join(PLAN),
        help="comma-separated inputs to measure (640, 64s, 64v, 64p; default all); the "
        "targets of the others read NOT RUN and fail",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated measurements ({', '.join(METHODS)}; default all)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="forget the inputs measured by earlier runs (kept in the cache, so that --only "
        "can measure the inputs in separate runs; the report says when each was measured)",
    )
    args = parser.parse_args(argv)
    keys = [key for key in args.only.split(",") if key]
    unknown = sorted(set(keys) - set(PLAN))
    if unknown:
        parser.error(f"unknown inputs {', '.join(unknown)}; choose among {', '.join(PLAN)}")
    methods = [method for method in args.methods.split(",") if method]
    if set(methods) - set(METHODS):
        parser.error(f"unknown measurements; choose among {', '.join(METHODS)}")
    load = os.getloadavg()
    inputs = make_inputs(keys)
    results = {} if args.fresh else _load_results()
    for key in keys:  # what this run measures anew
        results = {k: v for k, v in results.items() if k[0] != key or k[1] not in methods}
    # One input at a time (its methods alternating over the rounds), the report rewritten after
    # each, so that a run stopped early still leaves what it measured.
    for key in keys:
        results.update(run(inputs, args.rounds, args.rounds_long, [key], methods))
        _save_results(results)
        report, passed = render(inputs, results, args.rounds, args.rounds_long, load)
        if not args.no_write:
            write_report(report)
    print(report)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
