"""The golden fixture: what the bundled model answers on one fixed clip sent as PNG frames,
computed the way the service computes it (its loader, its decode and tensor stages, its softmax).

`make model` writes it after training; `make golden` rewrites it for the bundled model alone:

    PYTHONPATH=services/classifier/src python services/classifier/training/golden.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from heldout import service_probabilities

from behaviour_clips import clip_to_png_bytes, generate_clip
from classifier.model.runtime import load_model

CLASSIFIER_DIR = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = CLASSIFIER_DIR / "models" / "rodent-behaviour"
DEFAULT_GOLDEN = CLASSIFIER_DIR / "tests" / "model" / "golden.json"

GOLDEN_CLIP = ("eat", 3)
"""(label, seed) of the held-out clip whose probabilities the model tests pin down."""


def write_golden(model_dir: Path, path: Path) -> None:
    """Record what the model in ``model_dir`` (with its manifest) answers on the golden clip."""
    label, seed = GOLDEN_CLIP
    clip = generate_clip(label, seed)
    model = load_model(model_dir)
    probabilities = service_probabilities(model, clip_to_png_bytes(clip))
    golden = {
        "label": label,
        "seed": seed,
        "clip_sha256": hashlib.sha256(clip.tobytes()).hexdigest(),
        "model_sha256": model.manifest.sha256,
        "probabilities": [float(p) for p in probabilities],
        "tolerance": 1e-5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite the golden fixture for a model.")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_GOLDEN)
    args = parser.parse_args(argv)
    write_golden(args.model_dir, args.out)
    print(f"golden: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
