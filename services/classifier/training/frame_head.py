"""Train the per-frame sequence head (`make frame-head`): an MS-TCN over the frozen frame
encoder's embeddings that labels every frame of a recording, exported as sequence_head.onnx and
declared in the manifest's `parts.sequence_head`.

    PYTHONPATH=services/classifier/src python services/classifier/training/frame_head.py \\
        --model-dir services/classifier/models/rodent-behaviour

Why: averaging the 24-frame clip model's window probabilities blurs every bout boundary (a window
that straddles two bouts belongs to neither) and cannot see that a short run of motion is a walk.
A temporal convolutional head over the whole recording's embeddings (as DeepEthogram's sequence
model and MS-TCN do) sees a few seconds either side of each frame. Its receptive field is finite
(`context_frames` either side), so the service can run it on overlapping chunks of a stream and
get what one run over the whole recording gives.

Data (frame_head_data.py): generated recordings, seeds 20000+ at 64x64 and 30000+ at 240x240
through H.264; validation on the tuning recordings 8000-8002. CPU, 2 threads, seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from frame_head_data import (
    FloatArray,
    IntArray,
    RecordingSpec,
    cached_embeddings,
    training_specs,
)
from onnx_export import export_checked
from torch import nn
from torch.nn import functional

from classifier.model.runtime import load_model

ROOT = Path(__file__).resolve().parents[3]
HEAD_FILE = "sequence_head.onnx"
TUNING_SEEDS = (8000, 8001, 8002)
#: MS-TCN's smoothing loss: squared log-probability change between neighbouring frames,
#: truncated at TAU, weighted by LAMBDA (Farha and Gall, CVPR 2019).
TAU, LAMBDA = 4.0, 0.15


class DilatedResidual(nn.Module):
    """x + dropout(1x1(relu(dilated 3-tap conv(x)))), non-causal, length kept."""

    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.dropout(self.pointwise(functional.relu(self.dilated(x))))
        return out


class Stage(nn.Module):
    """1x1 in, dilated residual layers (dilations 1, 2, 4, ...), 1x1 out to class scores."""

    def __init__(self, inputs: int, channels: int, classes: int, layers: int, dropout: float):
        super().__init__()
        self.inward = nn.Conv1d(inputs, channels, 1)
        self.layers = nn.ModuleList(DilatedResidual(channels, 2**k, dropout) for k in range(layers))
        self.outward = nn.Conv1d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inward(x)
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.outward(x)
        return out


class SequenceHead(nn.Module):
    """Embeddings `[B, L, E]` -> per-frame logits `[B, L, classes]`, through a prediction stage
    and refinement stages that read the previous stage's probabilities. Every stage sees
    `2**layers - 1` frames either side, so the whole head sees `context_frames`."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        embedding: int,
        classes: int,
        mean: FloatArray,
        std: FloatArray,
        channels: int = 64,
        layers: int = 7,
        stages: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean).reshape(1, -1, 1))
        self.register_buffer("std", torch.from_numpy(std).reshape(1, -1, 1))
        self.input_dropout = nn.Dropout1d(dropout)
        self.stages = nn.ModuleList(
            [Stage(embedding, channels, classes, layers, dropout)]
            + [Stage(classes, channels, classes, layers, dropout) for _ in range(stages - 1)]
        )
        self.context_frames = stages * (2**layers - 1)

    def stage_logits(self, embeddings: torch.Tensor) -> list[torch.Tensor]:
        x = (embeddings.transpose(1, 2) - self.mean) / self.std
        outputs = [self.stages[0](self.input_dropout(x))]
        for stage in self.stages[1:]:
            outputs.append(stage(functional.softmax(outputs[-1], dim=1)))
        return outputs

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.stage_logits(embeddings)[-1].transpose(1, 2)


def head_loss(outputs: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus the truncated smoothing loss, summed over stages."""
    total = torch.zeros(())
    for logits in outputs:
        total = total + functional.cross_entropy(logits, labels)
        log_p = functional.log_softmax(logits, dim=1)
        change = (log_p[:, :, 1:] - log_p[:, :, :-1].detach()) ** 2
        total = total + LAMBDA * torch.clamp(change, max=TAU * TAU).mean()
    return total


def crops(
    data: list[tuple[FloatArray, IntArray]], length: int, batch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random same-length crops from random recordings."""
    xs, ys = [], []
    for _ in range(batch):
        embeddings, labels = data[int(rng.integers(len(data)))]
        start = int(rng.integers(0, len(labels) - length + 1))
        xs.append(embeddings[start : start + length])
        ys.append(labels[start : start + length])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def predict(head: SequenceHead, embeddings: FloatArray) -> IntArray:
    head.eval()
    with torch.no_grad():
        logits = head(torch.from_numpy(embeddings)[None])[0]
    result: IntArray = logits.argmax(dim=-1).numpy().astype(np.int64)
    return result


def accuracy(head: SequenceHead, data: list[tuple[FloatArray, IntArray]]) -> float:
    correct = sum(int((predict(head, x) == y).sum()) for x, y in data)
    return correct / sum(len(y) for _, y in data)


def train(
    train_data: list[tuple[FloatArray, IntArray]],
    valid_data: list[tuple[FloatArray, IntArray]],
    classes: int,
    args: argparse.Namespace,
) -> SequenceHead:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    stacked = np.concatenate([x for x, _ in train_data])
    mean = stacked.mean(axis=0).astype(np.float32)
    std = (stacked.std(axis=0) + 1e-3).astype(np.float32)
    head = SequenceHead(
        stacked.shape[1],
        classes,
        mean,
        std,
        channels=args.channels,
        layers=args.layers,
        stages=args.stages,
        dropout=args.dropout,
    )
    optimiser = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        head.train()
        x, y = crops(train_data, args.crop, args.batch, rng)
        loss = head_loss(head.stage_logits(x), y)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
        optimiser.step()
        schedule.step()
        if step % args.report_every == 0 or step == args.steps:
            print(
                f"  step {step}: loss {loss.item():.3f}, tuning accuracy "
                f"{accuracy(head, valid_data):.2%} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return head.eval()


class ExportedHead(nn.Module):
    def __init__(self, head: SequenceHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(embeddings)
        return out


def export(head: SequenceHead, path: Path, embedding: int, opset: int) -> None:
    """ONNX `[1, L, E]` -> `[1, L, classes]` with a dynamic length axis."""
    length = torch.export.Dim("frames", min=1, max=1 << 22)
    export_checked(
        ExportedHead(head).eval(), torch.zeros(1, 512, embedding), path,
        ("embeddings", "logits"), ({1: length},), opset,
    )  # fmt: skip


def check_export(head: SequenceHead, path: Path, embeddings: FloatArray) -> float:
    """Largest logit difference between torch and onnxruntime on real embeddings."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"embeddings": embeddings[None]})
    with torch.no_grad():
        torch_logits = head(torch.from_numpy(embeddings)[None]).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/frame-head")
    parser.add_argument("--recordings", type=int, default=24, help="raw 64x64 training ones")
    parser.add_argument("--h264", type=int, default=0, help="240x240 H.264 training ones")
    parser.add_argument("--frames", type=int, default=9000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-every", type=int, default=100)
    parser.add_argument("--no-export", action="store_true", help="train and validate only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(2)
    started = time.perf_counter()
    model = load_model(args.model_dir, intra_op_threads=2)
    labels = model.manifest.labels
    specs = training_specs(args.recordings, args.frames, args.h264)
    train_data = [cached_embeddings(spec, model, args.cache, labels) for spec in specs]
    valid_specs = [RecordingSpec(seed, 9000, 240, "h264") for seed in TUNING_SEEDS]
    valid_data = [cached_embeddings(spec, model, args.cache, labels) for spec in valid_specs]
    prepared = time.perf_counter()
    print(f"frame_head: data ready in {prepared - started:.0f} s", flush=True)
    head = train(train_data, valid_data, len(labels), args)
    trained = time.perf_counter()
    tuning = accuracy(head, valid_data)
    print(f"frame_head: trained in {trained - prepared:.0f} s; tuning accuracy {tuning:.2%}")
    if args.no_export:
        return 0
    manifest_path = args.model_dir / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    path = args.model_dir / HEAD_FILE
    embedding = model.manifest.parts.frame_encoder.embedding_size if model.manifest.parts else 0
    export(head, path, embedding, int(manifest["provenance"]["opset"]))
    difference = check_export(head, path, valid_data[0][0])
    if not difference <= 1e-3:
        print(f"frame_head: ONNX and torch differ by {difference:.2g}", file=sys.stderr)
        return 1
    manifest["parts"]["sequence_head"] = {
        "file": HEAD_FILE,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input": "embeddings",
        "output": "logits",
        "kind": "logits",
        "context_frames": head.context_frames,
    }
    manifest["provenance"]["sequence_head"] = {
        "trained_by": "services/classifier/training/frame_head.py",
        "architecture": (
            f"MS-TCN: {args.stages} stages x {args.layers} dilated residual layers, "
            f"{args.channels} channels, kernel 3"
        ),
        "train_recordings": [f"{spec.key}" for spec in specs],
        "validation_seeds": list(TUNING_SEEDS),
        "steps": args.steps,
        "crop_frames": args.crop,
        "batch": args.batch,
        "seed": args.seed,
        "tuning_frame_accuracy": round(tuning, 4),
        "train_seconds": round(trained - prepared),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"frame_head: wrote {path} (ONNX vs torch {difference:.1g}) and the manifest entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
