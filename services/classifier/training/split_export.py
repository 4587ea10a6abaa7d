"""Export the CNN-LSTM's two halves as ONNX graphs of their own, from the same weights as the
whole-clip graph: the frame encoder (one frame -> its embedding) and the temporal head (a window
of embeddings -> logits). A recording's frames are then each encoded once, and every window that
contains a frame reuses its embedding instead of running the CNN on it again.

    PYTHONPATH=services/classifier/src python services/classifier/training/split_export.py \\
        --model-dir services/classifier/models/rodent-behaviour

(`make model-parts`.) Reads the trained weights (rodent-behaviour.pt beside this file unless
--weights says otherwise), writes frame_encoder.onnx and temporal_head.onnx into the model folder,
checks that they compute what the folder's whole-clip graph computes, and writes the manifest's
`parts` section. The whole-clip graph itself is left as it is. `make model` calls export_parts
after training, so both routes give the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime
import torch
from clip_model import ClipClassifier
from onnx_export import export_checked
from torch import nn

TRAINING_DIR = Path(__file__).resolve().parent
ENCODER_FILE, HEAD_FILE = "frame_encoder.onnx", "temporal_head.onnx"
TOLERANCE = 1e-4
"""Largest difference in any class probability allowed between the two paths (the service's
start-up check uses the same bound)."""


class FrameEncoder(nn.Module):
    """`[N, H, W, C]` frames in [0, 1] -> `[N, embedding]`: the CNN the whole graph runs on each
    frame."""

    def __init__(self, model: ClipClassifier) -> None:
        super().__init__()
        self.encoder = model.frame_encoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        embeddings: torch.Tensor = self.encoder(frames.permute(0, 3, 1, 2))
        return embeddings


class TemporalHead(nn.Module):
    """`[W, T, embedding]` windows of embeddings -> `[W, classes]` logits."""

    def __init__(self, model: ClipClassifier) -> None:
        super().__init__()
        self.temporal, self.head = model.temporal, model.head

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.temporal(embeddings)
        logits: torch.Tensor = self.head(sequence[:, -1])
        return logits


def export_graph(
    module: nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str, str], opset: int
) -> None:
    """One self-contained ONNX file; `names` are (input, output, dynamic first axis)."""
    input_name, output_name, axis_name = names
    first_axis = torch.export.Dim(axis_name, min=1, max=1 << 20)
    export_checked(module, example, path, (input_name, output_name), ({0: first_axis},), opset)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_parts(model: ClipClassifier, out_dir: Path, frames: int, opset: int) -> dict[str, Any]:
    """Write both part graphs into `out_dir` and return the manifest's `parts` section."""
    model.eval()
    encoder, head = FrameEncoder(model).eval(), TemporalHead(model).eval()
    example_frames = torch.zeros(2, model.height, model.width, model.channels)
    example_windows = torch.zeros(2, frames, model.embedding)
    export_graph(
        encoder, example_frames, out_dir / ENCODER_FILE, ("frames", "embeddings", "frames"), opset
    )
    export_graph(
        head, example_windows, out_dir / HEAD_FILE, ("embeddings", "logits", "windows"), opset
    )
    return {
        "frame_encoder": {
            "file": ENCODER_FILE,
            "sha256": _sha256(out_dir / ENCODER_FILE),
            "input": "frames",
            "output": "embeddings",
            "embedding_size": model.embedding,
        },
        "temporal_head": {
            "file": HEAD_FILE,
            "sha256": _sha256(out_dir / HEAD_FILE),
            "input": "embeddings",
            "output": "logits",
        },
    }


def _session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _softmax(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    result: npt.NDArray[np.float32] = exp / exp.sum(axis=-1, keepdims=True)
    return result


def largest_difference(
    model_dir: Path, manifest: dict[str, Any], parts_dir: Path, windows: int = 16
) -> float:
    """How far the parts in `parts_dir` stray from the whole graph's class probabilities, on
    blank and random windows (random pixels reach every weight)."""
    spec, parts = manifest["input"], manifest["parts"]
    shape = (spec["frames"], spec["height"], spec["width"], spec["channels"])
    batch = np.random.default_rng(0).random((windows, *shape), dtype=np.float32)
    batch[0] = 0.0
    whole = _session(model_dir / manifest["file"])
    encoder = _session(parts_dir / parts["frame_encoder"]["file"])
    head = _session(parts_dir / parts["temporal_head"]["file"])
    (expected,) = whole.run([manifest["output"]["name"]], {spec["name"]: batch})
    (embedded,) = encoder.run(
        [parts["frame_encoder"]["output"]],
        {parts["frame_encoder"]["input"]: batch.reshape(-1, *shape[1:])},
    )
    (split,) = head.run(
        [parts["temporal_head"]["output"]],
        {parts["temporal_head"]["input"]: embedded.reshape(windows, spec["frames"], -1)},
    )
    return float(np.abs(_softmax(split) - _softmax(expected)).max())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="folder with model.onnx and manifest.json"
    )
    parser.add_argument("--weights", type=Path, default=TRAINING_DIR / "rodent-behaviour.pt")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    manifest_path = args.model_dir / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    spec = manifest["input"]
    model = ClipClassifier(
        classes=len(manifest["labels"]),
        height=spec["height"],
        width=spec["width"],
        channels=spec["channels"],
    )
    model.load_state_dict(torch.load(args.weights, weights_only=True))
    opset = int(manifest["provenance"]["opset"])
    # Exported beside the folder first, so that parts which fail the check replace nothing.
    with tempfile.TemporaryDirectory(dir=args.model_dir.parent) as staging:
        # The same weights give the same encoder, so a trained sequence head still fits it.
        sequence_head = manifest.get("parts", {}).get("sequence_head")
        manifest["parts"] = export_parts(model, Path(staging), spec["frames"], opset)
        if sequence_head is not None:
            manifest["parts"]["sequence_head"] = sequence_head
        difference = largest_difference(args.model_dir, manifest, Path(staging))
        if difference > TOLERANCE:
            print(
                f"split_export: the parts differ from {manifest['file']} by up to "
                f"{difference:.2g} in a class probability (tolerance {TOLERANCE:g}): were they "
                "exported from other weights? Nothing written.",
                file=sys.stderr,
            )
            return 1
        for name in (ENCODER_FILE, HEAD_FILE):
            os.replace(Path(staging) / name, args.model_dir / name)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"split_export: wrote {ENCODER_FILE} and {HEAD_FILE} into {args.model_dir}; "
        f"largest probability difference from {manifest['file']}: {difference:.2g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
