"""What a training run leaves behind besides the ONNX file: the held-out evaluation, the
manifest, the contact sheet's seed and the metrics block of the model card. Torch-free.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import multiprocessing
import multiprocessing.pool
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime
from clip_data import INPUT_SPEC
from heldout import VARIANTS, Evaluation, Runner, evaluate, heldout_items, prepare_clips

import behaviour_clips
from behaviour_clips import LABELS
from classifier.model.manifest import InputSpec

Preparer = Callable[[Sequence[tuple[str, int]], str, InputSpec], list[npt.NDArray[np.float32]]]

CONTACT_SHEET_SEED = 1
"""A cage in which every behaviour reads clearly at a glance."""


def onnx_runner(path: Path, threads: int) -> Runner:
    """The exported graph alone (no manifest yet: its metrics are measured with this)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def run(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(session.run(["logits"], {"frames": batch})[0])

    return run


def _prepare_in_pool(pool: multiprocessing.pool.Pool) -> Preparer:
    """prepare_clips split over two processes: generation and decoding dominate evaluation."""

    def prepare(
        items: Sequence[tuple[str, int]], variant: str, spec: InputSpec
    ) -> list[npt.NDArray[np.float32]]:
        halves = [items[: len(items) // 2], items[len(items) // 2 :]]
        parts = pool.starmap(prepare_clips, [(half, variant, spec) for half in halves])
        return [tensor for part in parts for tensor in part]

    return prepare


def evaluate_heldout(
    model_path: Path, per_class: int, workers: int, log: logging.Logger
) -> dict[str, Evaluation]:
    spec = InputSpec.model_validate(INPUT_SPEC)
    items = heldout_items(per_class)
    run = onnx_runner(model_path, threads=workers)
    results = {}
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for variant in VARIANTS:
            started = time.monotonic()
            results[variant] = evaluate(
                run, spec, items, variant, batch_size=64, prepare=_prepare_in_pool(pool)
            )
            log.info(
                "held-out %s: accuracy %.4f on %d clips (%.0f s)",
                variant,
                results[variant].accuracy,
                results[variant].clips,
                time.monotonic() - started,
            )
    return results


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(
    model_path: Path,
    training: dict[str, Any],
    seed: int,
    results: dict[str, Evaluation],
    torch_version: str,
) -> dict[str, Any]:
    clean = results["png"]
    opset = max(
        entry.version for entry in onnx.load(str(model_path)).opset_import if entry.domain == ""
    )
    return {
        "name": "rodent-behaviour",
        "version": "1.0.0",
        "description": (
            "Demonstration CNN-LSTM trained only on synthetic side-view home-cage clips "
            "(behaviour_clips); it shows how the service works and says nothing about real "
            "animals."
        ),
        "file": model_path.name,
        "sha256": sha256_of(model_path),
        "labels": list(LABELS),
        "input": INPUT_SPEC,
        "output": {"name": "logits", "kind": "logits"},
        "provenance": {
            "trained_by": "services/classifier/training/train.py",
            "generator": f"behaviour_clips {behaviour_clips.__version__}",
            "seed": seed,
            "train_clips": training["train_clips"],
            "epochs": training["epochs"],
            "torch": torch_version.split("+")[0],
            "opset": opset,
            "created": datetime.date.today().isoformat(),
        },
        "metrics": {
            "heldout_accuracy": round(clean.accuracy, 4),
            "per_class_accuracy": {k: round(v, 4) for k, v in clean.per_class_accuracy.items()},
            "jpeg_q75_accuracy": round(results["jpeg_q75"].accuracy, 4),
            "rgb128_resized_accuracy": round(results["rgb128"].accuracy, 4),
            "confusion_matrix": clean.confusion.tolist(),
            "heldout_clips": clean.clips,
        },
    }


METRICS_START = "<!-- metrics:start (written by training/train.py) -->"
METRICS_END = "<!-- metrics:end -->"


def metrics_markdown(
    results: dict[str, Evaluation],
    per_class: int,
    training: dict[str, Any],
    seed: int,
    wall_seconds: float,
) -> str:
    names = {
        "png": "clean (64x64 PNG)",
        "jpeg_q75": "JPEG quality 75",
        "rgb128": "128x128 RGB, resized by the service",
    }
    lines = [
        METRICS_START,
        "",
        f"Held-out set: {per_class} clips per class ({per_class * len(LABELS)} in all), generator "
        f"seeds 0-{per_class - 1}, never used in training (training seeds start at "
        f"{training['first_train_seed']:,}). Training: {training['train_clips']:,} clips, "
        f"{training['epochs']} epochs, seed {seed}, {training['train_seconds']} s on 2 CPU "
        f"cores including data generation; {wall_seconds / 60:.1f} minutes for the whole run "
        "with export and evaluation.",
        "",
        "| delivery | accuracy | lowest class |",
        "|---|---|---|",
    ]
    for variant, evaluation in results.items():
        worst = min(evaluation.per_class_accuracy.items(), key=lambda item: item[1])
        lines.append(
            f"| {names[variant]} | {evaluation.accuracy:.2%} | {worst[0]} {worst[1]:.2%} |"
        )
    for variant, evaluation in results.items():
        lines += [
            "",
            f"Confusion matrix, {names[variant]} (rows: true class, columns: predicted):",
            "",
        ]
        lines.append("| true \\ predicted | " + " | ".join(LABELS) + " | accuracy |")
        lines.append("|---" * (len(LABELS) + 2) + "|")
        per_class_accuracy = evaluation.per_class_accuracy
        for index, label in enumerate(LABELS):
            row = " | ".join(str(int(count)) for count in evaluation.confusion[index])
            lines.append(f"| **{label}** | {row} | {per_class_accuracy[label]:.1%} |")
    lines += ["", METRICS_END]
    return "\n".join(lines)


def update_model_card(card: Path, block: str, log: logging.Logger) -> None:
    if not card.exists():
        log.warning("model card %s not found; metrics not written into it", card)
        return
    text = card.read_text()
    pattern = re.compile(re.escape(METRICS_START) + ".*?" + re.escape(METRICS_END), re.DOTALL)
    if not pattern.search(text):
        log.warning("model card %s has no metrics markers; metrics not written into it", card)
        return
    card.write_text(pattern.sub(lambda _: block, text))
    log.info("updated metrics in %s", card)
