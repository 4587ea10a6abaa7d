"""The steps of training the bundled model: generate clips, fit the CNN-LSTM, export ONNX,
measure it on held-out clips, and write the manifest, fixtures and model-card metrics.

Run it through train.py, which sets up the process first.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import multiprocessing
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime
import torch
from clip_model import ClipClassifier
from heldout import (
    TRAIN_SEED_START,
    VALIDATION_SEED_START,
    VARIANTS,
    Evaluation,
    InputSpec,
    decode_frames,
    evaluate,
    heldout_items,
    prepare_clips,
    softmax,
)
from PIL import Image
from split_export import export_parts
from torch import nn

import behaviour_clips
from behaviour_clips import LABELS, clip_to_png_bytes, contact_sheet, generate_clip
from behaviour_clips.render import jpeg_round_trip

REPO_ROOT = Path(__file__).resolve().parents[3]
TRAINING_DIR = Path(__file__).resolve().parent
FRAMES, SIZE = 24, 64

INPUT_SPEC: dict[str, Any] = {
    "name": "frames",
    "layout": "NTHWC",
    "frames": FRAMES,
    "height": SIZE,
    "width": SIZE,
    "channels": 1,
    "dtype": "float32",
    "scaling": "unit",
    "color_mode": "L",
    "resize_filter": "bilinear",
}

ClipArray = npt.NDArray[np.uint8]


def _training_clip(item: tuple[str, int, str, int]) -> ClipArray:
    """One training clip, sometimes delivered the way the held-out variants are (never the same
    seeds): JPEG-compressed, or filmed at 128x128 and resized by the service's filter."""
    label, seed, delivery, quality = item
    if delivery == "rgb128":
        big = generate_clip(label, seed, size=2 * SIZE)
        return np.stack(
            [
                np.asarray(Image.fromarray(frame).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
                for frame in big
            ]
        )
    clip = generate_clip(label, seed)
    return jpeg_round_trip(clip, quality) if delivery == "jpeg" else clip


def make_clips(
    items: list[tuple[str, int, str, int]], workers: int
) -> tuple[ClipArray, npt.NDArray[np.int64]]:
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        clips = pool.map(_training_clip, items, chunksize=64)
    labels = np.array([LABELS.index(label) for label, *_ in items], dtype=np.int64)
    return np.stack(clips), labels


def training_items(
    count: int, first_seed: int, rng: np.random.Generator
) -> list[tuple[str, int, str, int]]:
    deliveries = rng.choice(["plain", "jpeg", "rgb128"], size=count, p=[0.7, 0.15, 0.15])
    qualities = rng.integers(40, 96, size=count)
    return [
        (LABELS[i % len(LABELS)], first_seed + i, str(deliveries[i]), int(qualities[i]))
        for i in range(count)
    ]


def as_input(clips: ClipArray) -> torch.Tensor:
    """uint8 (N, T, H, W) clips as the model's (N, T, H, W, 1) float input in [0, 1]."""
    return torch.from_numpy(clips).float().div_(255.0).unsqueeze(-1)


def accuracy(model: nn.Module, clips: ClipArray, labels: npt.NDArray[np.int64]) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, len(clips), 128):
            logits = model(as_input(clips[first : first + 128]))
            correct += int((logits.argmax(dim=1).numpy() == labels[first : first + 128]).sum())
    return correct / len(clips)


def train(args: argparse.Namespace, log: logging.Logger) -> tuple[ClipClassifier, dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    first_seed = TRAIN_SEED_START + args.seed * args.train_clips
    train_clips, train_labels = make_clips(
        training_items(args.train_clips, first_seed, rng), args.workers
    )
    val_clips, val_labels = make_clips(
        training_items(args.validation_clips, VALIDATION_SEED_START, rng), args.workers
    )
    log.info(
        "generated %d training and %d validation clips in %.0f s",
        len(train_clips),
        len(val_clips),
        time.monotonic() - started,
    )

    model = ClipClassifier(classes=len(LABELS), height=SIZE, width=SIZE)
    steps_per_epoch = len(train_clips) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=args.learning_rate,
        total_steps=args.epochs * steps_per_epoch,
        pct_start=0.2,
    )
    shuffler = torch.Generator().manual_seed(args.seed)
    loss_fn = nn.CrossEntropyLoss()
    targets = torch.from_numpy(train_labels)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_clips), generator=shuffler).numpy()
        total_loss, correct = 0.0, 0
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            logits = model(as_input(train_clips[batch]))
            loss = loss_fn(logits, targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(dim=1) == targets[batch]).sum())
        seen = steps_per_epoch * args.batch_size
        log.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f, validation accuracy %.4f (%.0f s)",
            epoch,
            args.epochs,
            total_loss / seen,
            correct / seen,
            accuracy(model, val_clips, val_labels),
            time.monotonic() - started,
        )
    model.eval()
    return model, {
        "train_clips": args.train_clips,
        "first_train_seed": first_seed,
        "epochs": args.epochs,
        "train_seconds": round(time.monotonic() - started),
    }


def export_onnx(model: ClipClassifier, path: Path, opset: int) -> None:
    """ONNX with a dynamic batch axis named `batch`, weights inside the one file."""
    example = torch.zeros(2, FRAMES, SIZE, SIZE, 1)
    batch = torch.export.Dim("batch", min=1, max=1024)
    # The exporter narrates its progress through warnings and logging; its result is checked
    # below instead.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=["frames"],
            output_names=["logits"],
            dynamic_shapes={"frames": {0: batch}},
            external_data=False,
            verbose=False,
        )
    exported = onnx.load(str(path))
    strip_debug_metadata(exported.graph)
    for function in exported.functions:
        del function.metadata_props[:]
        for node in function.node:
            del node.metadata_props[:]
    onnx.save(exported, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def strip_debug_metadata(graph: onnx.GraphProto) -> None:
    """Drop the exporter's per-node notes: Python stack traces with this machine's file paths,
    FX node dumps and scope names. They help debug an export, not run the model."""
    del graph.metadata_props[:]
    for value in (*graph.input, *graph.output, *graph.value_info):
        del value.metadata_props[:]
    for tensor in graph.initializer:
        del tensor.metadata_props[:]
    for node in graph.node:
        del node.metadata_props[:]
        for attribute in node.attribute:
            if attribute.HasField("g"):
                strip_debug_metadata(attribute.g)
            for subgraph in attribute.graphs:
                strip_debug_metadata(subgraph)


def onnx_runner(path: Path, threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def run(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(session.run(["logits"], {"frames": batch})[0])

    return run


def _prepare_in_pool(pool: Any) -> Any:
    def prepare(
        items: list[tuple[str, int]], variant: str, spec: InputSpec
    ) -> list[npt.NDArray[np.float32]]:
        halves = [items[: len(items) // 2], items[len(items) // 2 :]]
        parts = pool.starmap(prepare_clips, [(half, variant, spec) for half in halves])
        return [tensor for part in parts for tensor in part]

    return prepare


def evaluate_heldout(
    model_path: Path, per_class: int, workers: int, log: logging.Logger
) -> dict[str, Evaluation]:
    spec = InputSpec.from_manifest({"input": INPUT_SPEC})
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
    model_path: Path, training: dict[str, Any], seed: int, results: dict[str, Evaluation]
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
            "torch": torch.__version__.split("+")[0],
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


CONTACT_SHEET_SEED = 1
"""A cage in which every behaviour reads clearly at a glance."""

GOLDEN_CLIP = ("eat", 3)
"""(label, seed) of the held-out clip whose probabilities the model tests pin down."""


def write_golden(model_path: Path, path: Path) -> None:
    """Record what the exported model answers on one fixed clip, sent as PNG frames."""
    label, seed = GOLDEN_CLIP
    clip = generate_clip(label, seed)
    spec = InputSpec.from_manifest({"input": INPUT_SPEC})
    tensor = decode_frames(clip_to_png_bytes(clip), spec)[None]
    probabilities = softmax(onnx_runner(model_path, threads=1)(tensor))[0]
    golden = {
        "label": label,
        "seed": seed,
        "clip_sha256": hashlib.sha256(clip.tobytes()).hexdigest(),
        "model_sha256": sha256_of(model_path),
        "probabilities": [float(p) for p in probabilities],
        "tolerance": 1e-5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=2) + "\n")


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the bundled demonstration model.")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.onnx + manifest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-clips", type=int, default=9600)
    parser.add_argument("--validation-clips", type=int, default=480)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--heldout-per-class", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="processes and threads to use")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument(
        "--weights",
        type=Path,
        default=TRAINING_DIR / "rodent-behaviour.pt",
        help="where to keep the PyTorch weights (for the ONNX parity test)",
    )
    parser.add_argument(
        "--golden",
        type=Path,
        default=REPO_ROOT / "services" / "classifier" / "tests" / "model" / "golden.json",
        help="fixture of the model's answer on one fixed clip",
    )
    parser.add_argument(
        "--contact-sheet",
        type=Path,
        default=REPO_ROOT / "docs" / "contact-sheet.png",
        help="picture of one clip per class, for the model card",
    )
    parser.add_argument(
        "--model-card",
        type=Path,
        default=REPO_ROOT / "docs" / "model-card.md",
        help="markdown file whose metrics block is rewritten",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = logging.getLogger("train")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    torch.set_num_threads(args.workers)
    torch.use_deterministic_algorithms(True)
    started = time.monotonic()

    model, training = train(args, log)
    args.out.mkdir(parents=True, exist_ok=True)
    args.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.weights)
    model_path = args.out / "model.onnx"
    export_onnx(model, model_path, args.opset)
    log.info("exported %s (%d bytes)", model_path, model_path.stat().st_size)

    results = evaluate_heldout(model_path, args.heldout_per_class, args.workers, log)
    manifest = build_manifest(model_path, training, args.seed, results)
    manifest["parts"] = export_parts(model, args.out, FRAMES, args.opset)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_golden(model_path, args.golden)
    contact_sheet(seed=CONTACT_SHEET_SEED).save(args.contact_sheet)
    wall_seconds = time.monotonic() - started
    update_model_card(
        args.model_card,
        metrics_markdown(results, args.heldout_per_class, training, args.seed, wall_seconds),
        log,
    )
    log.info("done in %.0f s: %s", time.monotonic() - started, json.dumps(manifest["metrics"]))
    return 0
