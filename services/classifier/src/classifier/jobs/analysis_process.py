"""One job's analysis, in a child process of its own (``multiprocessing``'s fork server).

The child loads the model with one onnxruntime thread, lowers its own priority, decodes and
analyses the recording and writes the result files; it reports to the runner through a pipe:
``("recording", summary)`` once the source is open, ``("progress", done, total)`` a few times a
second, then ``("succeeded", summary, files)`` or ``("failed", type, message)``. A crashing
decoder takes only this process down (the runner fails the job), and the server's event loop and
GIL are never touched by decoding. The child stops by itself when its parent is gone, so a killed
server leaves no analysis running for a job whose lease then lapses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Lower than the server's, so decoding yields the CPU to clip requests and health checks.
CHILD_NICENESS = 10
PROGRESS_INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class AnalysisTask:
    """What the child needs; plain values only, so it pickles for the spawned process."""

    job_id: str
    model_dir: str
    input_kind: str
    input_path: str
    parameters: dict[str, Any]
    recording: dict[str, Any]
    subject: str | None
    session: str | None
    metadata: dict[str, Any]
    #: ISO 8601 with an offset, as ``datetime.fromisoformat`` reads it.
    created_at: str
    out_dir: str
    job_document: dict[str, Any]
    max_frame_pixels: int
    #: Worker processes for a long recording's decoding and encoding (recordings/parallel.py).
    processes: int = 1


class _ParentGoneError(Exception):
    """The runner's process died; nobody is left to report to."""


def run_analysis(task: AnalysisTask, conn: Connection) -> None:
    """The child's entry point."""
    # Ctrl-C in a terminal reaches the whole process group; the runner decides when this stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    parent = os.getppid()
    try:
        outcome = _analyse(task, conn, parent)
    except _ParentGoneError:
        return
    except BaseException as exc:  # everything that is not the recording's fault is still said
        outcome = ("failed", "internal_error", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    try:
        conn.send(outcome)
    except OSError:
        pass
    finally:
        conn.close()


def _frames_of(path: str) -> tuple[list[Path], list[str], list[tuple[int, int]] | None]:
    """frames.json: [path, filename] per frame, and [offset, size] after them for frames in
    an upload's pack file."""
    listed = json.loads(Path(path).read_text(encoding="utf-8"))
    paths = [Path(entry[0]) for entry in listed]
    filenames = [str(entry[1]) for entry in listed]
    packed = bool(listed) and len(listed[0]) == 4
    spans = [(int(entry[2]), int(entry[3])) for entry in listed] if packed else None
    return paths, filenames, spans


def _analyse(task: AnalysisTask, conn: Connection, parent: int) -> tuple[Any, ...]:
    # Imported here, in the child: the parent never needs PyAV or matplotlib loaded.
    from classifier.core.errors import RecordingError
    from classifier.model.runtime import load_model
    from classifier.pipeline.decode import DecodeLimits
    from classifier.recordings.analysis import (
        AnalysisParameters,
        Provenance,
        analyse_recording,
        file_sha256,
        sequence_sha256,
    )
    from classifier.recordings.exports import recording_document, write_results
    from classifier.recordings.source import (
        FrameSource,
        ImageSequenceSource,
        VideoSource,
    )

    last_sent = 0.0

    def send(message: tuple[Any, ...]) -> None:
        try:
            conn.send(message)
        except OSError:
            raise _ParentGoneError from None

    def progress(done: int, total: int | None) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent < PROGRESS_INTERVAL_S and done != total:
            return
        last_sent = now
        send(("progress", done, total))

    def cancelled() -> bool:
        # The runner stops this process itself on a cancel; what is left to notice here is a
        # runner that died (the child is then re-parented).
        if os.getppid() != parent:
            raise _ParentGoneError
        return False

    model = load_model(Path(task.model_dir), intra_op_threads=1)
    params = task.parameters
    recording = dict(task.recording)
    limits = DecodeLimits(max_frame_pixels=task.max_frame_pixels)
    try:
        parameters = AnalysisParameters(
            stride=int(params.get("stride", 1)),
            min_bout_ms=params.get("min_bout_ms"),
            bin_s=params.get("bin_s"),
        )
        source: FrameSource
        if task.input_kind == "video":
            video = Path(task.input_path)
            source = VideoSource(video, recording.get("filename"), limits=limits)
            if not recording.get("sha256"):  # submitted by path: hashed here, not at submit
                recording["sha256"] = file_sha256(video)
        else:
            paths, filenames, spans = _frames_of(task.input_path)
            source = ImageSequenceSource(
                paths, filenames, float(params["fps"]), limits=limits,
                name=recording.get("filename"), spans=spans,
            )  # fmt: skip
            if not recording.get("sha256"):  # an imported folder: whole files, hashed here
                recording["sha256"] = sequence_sha256(file_sha256(path) for path in paths)
        send(("recording", recording))
        analysis = analyse_recording(
            source,
            model,
            parameters,
            progress=progress,
            cancelled=cancelled,
            processes=task.processes,
        )
    except RecordingError as exc:
        return ("failed", exc.type, exc.detail)
    provenance = Provenance.create(
        input_sha256=str(recording["sha256"]),
        model=model,
        parameters=parameters,
        source_filename=str(recording.get("filename") or ""),
        subject=task.subject,
        session=task.session,
        metadata=task.metadata,
        created_at=datetime.fromisoformat(task.created_at),
    )
    summary = recording_document(analysis, provenance)
    job = {
        **task.job_document,
        "status": "succeeded",
        "recording": summary,
        "progress": {
            "frames_done": analysis.frames,
            "frames_total": analysis.frames,
            "percent": 100.0,
            "seconds_left": 0.0,
        },
    }
    files = write_results(analysis, provenance, Path(task.out_dir), job=job)
    return ("succeeded", summary, files)
