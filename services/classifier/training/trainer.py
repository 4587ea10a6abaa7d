"""The steps of training the bundled model, in order: generate clips and fit the CNN-LSTM
(fitting.py), export ONNX (onnx_export.py), measure it on held-out clips and write the manifest,
golden fixture, contact sheet and model-card metrics (artefacts.py, golden.py).

Run it through train.py, which sets up the process first.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from artefacts import (
    CONTACT_SHEET_SEED,
    build_manifest,
    evaluate_heldout,
    metrics_markdown,
    update_model_card,
)
from clip_data import FRAMES
from fitting import train
from golden import write_golden
from onnx_export import export_onnx
from split_export import export_parts

from behaviour_clips import contact_sheet

REPO_ROOT = Path(__file__).resolve().parents[3]
TRAINING_DIR = Path(__file__).resolve().parent


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
    manifest = build_manifest(model_path, training, args.seed, results, torch.__version__)
    manifest["parts"] = export_parts(model, args.out, FRAMES, args.opset)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_golden(args.out, args.golden)  # needs the manifest: loaded as the service loads it
    contact_sheet(seed=CONTACT_SHEET_SEED).save(args.contact_sheet)
    wall_seconds = time.monotonic() - started
    update_model_card(
        args.model_card,
        metrics_markdown(results, args.heldout_per_class, training, args.seed, wall_seconds),
        log,
    )
    log.info("done in %.0f s: %s", time.monotonic() - started, json.dumps(manifest["metrics"]))
    return 0
