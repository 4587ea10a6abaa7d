"""Where PyTorch is installed: the exported ONNX graph computes what the trained network does.

The dev environment has no torch, so there this is skipped; `make test-model` runs it in
.venv-train with REQUIRE_TORCH=1, where a missing torch is a failure rather than a skip.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from training.heldout import Runner

from behaviour_clips import LABELS, generate_clip

torch = (
    importlib.import_module("torch")
    if os.environ.get("REQUIRE_TORCH") == "1"
    else pytest.importorskip("torch")
)

from training.clip_model import ClipClassifier  # noqa: E402  (needs torch, checked above)

WEIGHTS = Path(__file__).resolve().parents[2] / "training" / "rodent-behaviour.pt"


def test_onnx_and_pytorch_agree(run_model: Runner) -> None:
    network = ClipClassifier(classes=len(LABELS))
    network.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    network.eval()
    clips = np.stack(
        [generate_clip(label, 900 + index)[..., None] for index, label in enumerate(LABELS)]
    ).astype(np.float32) / np.float32(255.0)
    with torch.no_grad():
        expected = network(torch.from_numpy(clips)).numpy()
    np.testing.assert_allclose(run_model(clips), expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(run_model(clips[:1]), expected[:1], atol=1e-4, rtol=0)
