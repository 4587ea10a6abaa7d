"""Shared data for the model tests: the bundled model as the service loads it, and its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from training.heldout import Runner

from classifier.model.manifest import InputSpec
from classifier.model.runtime import SequenceModel, load_model

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "rodent-behaviour"


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    """The manifest as written on disk, for the tests of what training recorded in it."""
    loaded: dict[str, Any] = json.loads((MODEL_DIR / "manifest.json").read_text())
    return loaded


@pytest.fixture(scope="session")
def model_path(manifest: dict[str, Any]) -> Path:
    return MODEL_DIR / str(manifest["file"])


@pytest.fixture(scope="session")
def model() -> SequenceModel:
    """Loaded, checked against its manifest and warmed up by the service's own loader."""
    return load_model(MODEL_DIR)


@pytest.fixture(scope="session")
def spec(model: SequenceModel) -> InputSpec:
    return model.manifest.input


@pytest.fixture(scope="session")
def run_model(model: SequenceModel) -> Runner:
    return model.run
