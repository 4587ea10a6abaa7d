"""The in-process yardsticks: the model alone, and the naive decode-then-infer loop.

Each runs one process per core, with no HTTP, for a fixed time, and reports sequences per
second summed over the processes.
"""

from __future__ import annotations

import io
import multiprocessing
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from classifier.model.manifest import InputSpec, load_manifest
from classifier.pipeline.decode import RESIZE_FILTERS


def open_session(model_dir: Path) -> tuple[ort.InferenceSession, str, str]:
    """The model in onnxruntime with the service's thread settings, its input and output names."""
    manifest = load_manifest(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_dir / manifest.file), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return session, manifest.input.name, manifest.output.name


def pillow_tensor(frames: list[bytes], spec: InputSpec) -> np.ndarray:
    """The plain Pillow path: open, convert, resize when needed, stack, scale."""
    pixels = []
    for data in frames:
        image = Image.open(io.BytesIO(data)).convert(spec.color_mode)
        if image.size != (spec.width, spec.height):
            image = image.resize((spec.width, spec.height), RESIZE_FILTERS[spec.resize_filter])
        pixels.append(np.asarray(image))
    stacked = np.stack(pixels)
    if stacked.ndim == 3:
        stacked = stacked[..., np.newaxis]
    tensor = stacked.astype(np.float32)
    if spec.scaling == "unit":
        tensor /= np.float32(255.0)
    return tensor[np.newaxis]


def _ceiling_worker(args: tuple[Path, float]) -> int:
    model_dir, seconds = args
    session, input_name, output_name = open_session(model_dir)
    spec = load_manifest(model_dir).input
    tensor = np.random.default_rng(0).random((1, *spec.shape), dtype=np.float32)
    for _ in range(20):  # warm up
        session.run([output_name], {input_name: tensor})
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        session.run([output_name], {input_name: tensor})
        count += 1
    return count


def _naive_worker(args: tuple[Path, float, list[list[bytes]]]) -> int:
    model_dir, seconds, sequences = args
    session, input_name, output_name = open_session(model_dir)
    spec = load_manifest(model_dir).input
    for frames in sequences[:4]:  # warm up
        session.run([output_name], {input_name: pillow_tensor(frames, spec)})
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        frames = sequences[count % len(sequences)]
        scores = session.run([output_name], {input_name: pillow_tensor(frames, spec)})[0]
        int(np.argmax(scores))
        count += 1
    return count


def _across_cores(worker, args, processes: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        counts: list[int] = pool.map(worker, [args] * processes)
    return sum(counts) / seconds


def inference_ceiling(model_dir: Path, processes: int, seconds: float) -> float:
    """Sequences per second: the model alone on a ready tensor, batch 1, one process per core."""
    return _across_cores(_ceiling_worker, (model_dir, seconds), processes, seconds)


def naive_reference(
    model_dir: Path, sequences: list[list[bytes]], processes: int, seconds: float
) -> float:
    """Sequences per second: Pillow decode, tensor, model; one process per core, no HTTP."""
    return _across_cores(_naive_worker, (model_dir, seconds, sequences), processes, seconds)
