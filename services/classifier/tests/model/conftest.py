"""Shared data for the model tests: the bundled model, its manifest and a runtime session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
from training.heldout import InputSpec

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "rodent-behaviour"


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MODEL_DIR / "manifest.json").read_text())
    return loaded


@pytest.fixture(scope="session")
def model_path(manifest: dict[str, Any]) -> Path:
    return MODEL_DIR / str(manifest["file"])


@pytest.fixture(scope="session")
def spec(manifest: dict[str, Any]) -> InputSpec:
    return InputSpec.from_manifest(manifest)


@pytest.fixture(scope="session")
def session(model_path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def run_model(session: onnxruntime.InferenceSession, manifest: dict[str, Any]) -> Any:
    input_name, output_name = manifest["input"]["name"], manifest["output"]["name"]

    def run(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(session.run([output_name], {input_name: batch})[0])

    return run
