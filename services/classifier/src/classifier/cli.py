"""``python -m classifier``: the command line. ``serve`` (the default) runs the HTTP service;
``worker`` runs jobs only (``classifier.jobs.worker``); ``migrate`` creates or upgrades the job
store's schema; ``analyze`` runs the recording pipeline on local videos or image folders, without
HTTP; ``keys`` manages the API keys file (``classifier.security.keys_cli``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from classifier.core.config import DEFAULT_MODEL_DIR, Settings, available_cores
from classifier.core.errors import ClassifierError, DataDirError, KeysFileError, ModelLoadError
from classifier.core.metrics import MULTIPROCESS_ENV
from classifier.jobs.data_dir import prepare_data_dir
from classifier.security import keys_cli

if TYPE_CHECKING:  # the pipeline's imports (PyAV, matplotlib, onnxruntime) wait for a command
    from classifier.model.runtime import SequenceModel
    from classifier.recordings.analysis import AnalysisParameters
    from classifier.recordings.source import FrameSource

#: File name endings of the images ``analyze`` reads from a folder (the /v1 formats).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m classifier",
        description="Classify image sequences with an ONNX model: serve it over HTTP (the "
        "default), analyse recordings from the command line, or manage API keys.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="serve the model over HTTP (the default); configured by CLASSIFIER_* variables",
        description="Check the model, then serve it with uvicorn as the CLASSIFIER_* settings "
        "say (docs/configuration.md).",
    )
    commands.add_parser(
        "worker",
        help="run recording jobs only, no HTTP (beside serve with CLASSIFIER_RUN_JOBS=false)",
        description="Claim and run recording jobs from the job store (CLASSIFIER_DATABASE_URL "
        "for several replicas) until SIGTERM, which releases the running jobs to the queue. "
        "CLASSIFIER_WORKER_HEALTH_FILE is touched every few seconds for probes.",
    )
    commands.add_parser(
        "migrate",
        help="create or upgrade the job store's schema, then exit",
        description="Apply the job store's pending schema migrations (PostgreSQL at "
        "CLASSIFIER_DATABASE_URL, else SQLite in CLASSIFIER_DATA_DIR). serve and worker do the "
        "same at start-up; this runs it on its own, for example before a rollout.",
    )
    analyze = commands.add_parser(
        "analyze",
        help="label every frame of videos or image folders; write bouts, budgets, ethograms",
        description="Run the recording pipeline on each VIDEO_OR_FOLDER: one folder of result "
        "files per recording under --out (docs/recordings.md). Recordings already analysed "
        "with the same input, model and parameters are skipped, so a rerun resumes.",
    )
    analyze.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="VIDEO_OR_FOLDER",
        help="a video file, or a folder of image frames in name order",
    )
    analyze.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="where each recording's result folder goes",
    )
    analyze.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="model folder (model.onnx, manifest.json); default: "
        "CLASSIFIER_MODEL_DIR or the bundled model",
    )
    analyze.add_argument(
        "--stride",
        type=int,
        default=1,
        help="frames between window starts, 1..window length (default 1)",
    )
    analyze.add_argument(
        "--min-bout-ms",
        type=_min_bout,
        default=None,
        metavar="MS",
        help='smoothing: a number of milliseconds, or JSON {"label": ms}',
    )
    analyze.add_argument(
        "--bin-s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also write time_budget_bins.csv with bins of this many seconds",
    )
    analyze.add_argument(
        "--fps", type=float, default=None, help="frame rate of image folders (required for them)"
    )
    analyze.add_argument(
        "--processes",
        type=_processes,
        default=0,
        metavar="N",
        help="processes that decode and encode a long recording at once (default 0: one per core)",
    )
    analyze.add_argument("--subject", default=None, help="carried into every export")
    analyze.add_argument("--session", default=None, help="carried into every export")
    keys_cli.add_subcommand(commands)
    return parser


def _processes(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 0 <= number <= 64:
        raise argparse.ArgumentTypeError(f"must be 0..64 (0: one per core), got {number}")
    return number


def _min_bout(value: str) -> float | dict[str, float]:
    text = value.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a number nor a JSON object of label -> ms"
        ) from None
    if isinstance(parsed, bool) or not isinstance(parsed, int | float | dict):
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor a JSON object")
    if isinstance(parsed, dict):
        return {str(k): v for k, v in parsed.items()}
    return float(parsed)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        return analyze(args)
    if args.command == "keys":
        return keys_cli.run(args)
    if args.command == "worker":
        return worker_main()
    if args.command == "migrate":
        return migrate_main()
    return serve_main()


# --- serve -----------------------------------------------------------------------------------


def serve_main() -> int:
    from classifier.model.runtime import load_model
    from classifier.security.auth import AccessControl

    settings = Settings()
    try:
        # Fail before binding a port: one clear line and a non-zero exit.
        load_model(settings.model_dir, intra_op_threads=settings.intra_op_threads)
    except ModelLoadError as exc:
        print(f"classifier: cannot serve the model: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        AccessControl.from_settings(settings)  # the keys file, when one is set, must parse
    except KeysFileError as exc:
        print(f"classifier: cannot use the API keys: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        # The job store, uploads and results live there; the same check, before binding.
        prepare_data_dir(settings.data_dir)
    except DataDirError as exc:
        print(f"classifier: cannot use the data folder: {exc}", file=sys.stderr, flush=True)
        return 2
    # uvicorn re-raises a SIGTERM it handled once it has drained and stopped; this no-op
    # handler receives it, so a requested stop ends with status 0 rather than -15.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    workers = settings.worker_processes
    metrics_dir = None
    if workers > 1 and MULTIPROCESS_ENV not in os.environ:
        # Set before the workers start, so each one's metrics land where any can sum them.
        metrics_dir = tempfile.mkdtemp(prefix="classifier-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        serve(settings, workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def serve(settings: Settings, workers: int) -> None:
    import uvicorn  # here, so that `analyze` does not pay for the server's imports

    from classifier.api.arrival import ArrivalStampingProtocol

    uvicorn.run(
        "classifier.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        # httptools, stamping each request's arrival so admission can see its queue wait.
        http=ArrivalStampingProtocol,
        access_log=False,  # the service writes its own structured access records
        timeout_graceful_shutdown=30,
        proxy_headers=False,
        server_header=False,
    )


# --- worker and migrate ----------------------------------------------------------------------


def worker_main() -> int:
    import asyncio

    from classifier.jobs.runner import RunnableModel
    from classifier.jobs.store import open_job_store
    from classifier.jobs.worker import run_worker
    from classifier.model.runtime import load_model

    settings = Settings()
    try:
        model = load_model(settings.model_dir, intra_op_threads=settings.intra_op_threads)
    except ModelLoadError as exc:
        print(f"classifier worker: cannot use the model: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        data = prepare_data_dir(settings.data_dir)
    except DataDirError as exc:
        print(f"classifier worker: cannot use the data folder: {exc}", file=sys.stderr, flush=True)
        return 2
    store = open_job_store(settings.database_url, data.store_path)
    asyncio.run(run_worker(settings, store, data, [RunnableModel(model.name, settings.model_dir)]))
    return 0


def migrate_main() -> int:
    from classifier.core.errors import JobStoreUnavailableError
    from classifier.jobs.store import open_job_store

    settings = Settings()
    try:
        data = prepare_data_dir(settings.data_dir)
        applied = open_job_store(settings.database_url, data.store_path).prepare()
    except (DataDirError, JobStoreUnavailableError) as exc:
        print(f"classifier migrate: {exc}", file=sys.stderr, flush=True)
        return 2
    where = "PostgreSQL" if settings.database_url else f"SQLite in {data.store_path}"
    if applied:
        print(f"migrate: {where}: applied {', '.join(map(str, applied))}")
    else:
        print(f"migrate: {where}: up to date")
    return 0


# --- analyze ---------------------------------------------------------------------------------


class ProgressBar:
    """One recording's progress on stderr: a redrawn bar on a terminal, a line per tenth of
    the recording otherwise (logs stay readable)."""

    WIDTH = 30

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.drawn = 0.0
        self.tenths = -1

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        fraction = min(done / total, 1.0) if total else 0.0
        elapsed = now - self.started
        if self.live:
            if now - self.drawn < 0.2 and done != total:
                return
            self.drawn = now
            filled = round(self.WIDTH * fraction)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            shown = f"{fraction:4.0%}" if total else "   ?"
            self.stream.write(f"\r{self.name} [{bar}] {shown} {done} frames {elapsed:.0f} s")
            if total and done >= total:
                self.stream.write("\n")
        else:
            tenths = int(fraction * 10) if total else 0
            if tenths > self.tenths:
                self.tenths = tenths
                self.stream.write(f"{self.name}: {tenths * 10}% ({done} frames, {elapsed:.0f} s)\n")
        self.stream.flush()


@dataclass(frozen=True, slots=True)
class Recording:
    """One command-line input, resolved: where it is, what it is called, where results go."""

    path: Path
    name: str
    out_dir: Path


def _natural_key(path: Path) -> list[Any]:
    """frame_2 before frame_10: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=_natural_key,
    )


def _recordings(inputs: Sequence[Path], out: Path) -> list[Recording]:
    taken: set[str] = set()
    recordings = []
    for path in inputs:
        base = path.name if path.is_dir() else path.stem
        base = base or "recording"
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}-{number}"
        taken.add(name)
        recordings.append(Recording(path, name, out / name))
    return recordings


def _open_source(recording: Recording, fps: float | None) -> tuple[FrameSource, str]:
    """The recording's frame source and its input sha256."""
    from classifier.recordings.analysis import file_sha256, sequence_sha256
    from classifier.recordings.source import ImageSequenceSource, VideoSource

    path = recording.path
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise ClassifierError(f"the folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
        if fps is None:
            raise ClassifierError("an image folder needs --fps (its frames carry no times)")
        digest = sequence_sha256(file_sha256(file) for file in files)
        return ImageSequenceSource(files, [f.name for f in files], fps, name=path.name), digest
    if not path.exists():
        raise ClassifierError("no such file or folder")
    return VideoSource(path), file_sha256(path)


def _already_done(
    out_dir: Path, digest: str, model: SequenceModel, parameters: dict[str, Any]
) -> bool:
    try:
        document = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    provenance = document.get("provenance", {}) if isinstance(document, dict) else {}
    return (
        (out_dir / "results.zip").is_file()
        and provenance.get("input_sha256") == digest
        and provenance.get("model_sha256") == model.manifest.sha256
        and provenance.get("parameters") == parameters
    )


def analyze(args: argparse.Namespace) -> int:
    from classifier.model.runtime import load_model
    from classifier.recordings.analysis import AnalysisParameters

    model_dir = args.model_dir or Path(os.environ.get("CLASSIFIER_MODEL_DIR", DEFAULT_MODEL_DIR))
    try:
        model = load_model(model_dir)
    except ModelLoadError as exc:
        print(f"analyze: cannot load the model: {exc}", file=sys.stderr)
        return 2
    parameters = AnalysisParameters(
        stride=args.stride, min_bout_ms=args.min_bout_ms, bin_s=args.bin_s
    )
    try:
        parameters.validate(model.manifest)
    except ClassifierError as exc:
        print(f"analyze: {exc.detail}", file=sys.stderr)
        return 2
    if args.fps is not None and not args.fps > 0:
        print(f"analyze: --fps must be positive, got {args.fps}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    recordings = _recordings(args.inputs, args.out)
    for recording in recordings:
        try:
            outcome = _analyze_one(recording, model, parameters, args)
        except ClassifierError as exc:
            failures.append((recording.path, exc.detail))
            print(f"{recording.name}: failed: {exc.detail}", file=sys.stderr)
            continue
        except Exception as exc:  # one bad recording must not end the batch
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = reason or type(exc).__name__
            failures.append((recording.path, reason))
            print(f"{recording.name}: failed: {reason}", file=sys.stderr)
            continue
        print(f"{recording.name}: {outcome} -> {recording.out_dir}")
    if failures:
        print(
            f"analyze: {len(failures)} of {len(recordings)} recording(s) failed:", file=sys.stderr
        )
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


def _analyze_one(
    recording: Recording, model: SequenceModel, parameters: AnalysisParameters, args: Any
) -> str:
    from classifier.recordings.analysis import (
        Provenance,
        analyse_recording,
        recorded_parameters,
    )
    from classifier.recordings.exports import write_results

    source, digest = _open_source(recording, args.fps)
    if _already_done(recording.out_dir, digest, model, recorded_parameters(parameters, model)):
        return "skipped, already complete"
    bar = ProgressBar(recording.name, sys.stderr)
    processes = args.processes or available_cores()
    analysis = analyse_recording(source, model, parameters, progress=bar, processes=processes)
    provenance = Provenance.create(
        input_sha256=digest,
        model=model,
        parameters=parameters,
        source_filename=source.info.filename,
        subject=args.subject,
        session=args.session,
    )
    # Written beside, then moved into place: a folder under --out is complete or absent.
    partial = recording.out_dir.with_name(recording.out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    write_results(analysis, provenance, partial)
    if recording.out_dir.exists():
        shutil.rmtree(recording.out_dir)
    partial.rename(recording.out_dir)
    return f"{analysis.frames} frames, {len(analysis.bouts)} bouts in {analysis.seconds:.1f} s"
