"""The version lives in one place (classifier.__version__), and a release tag must name it."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from classifier import __version__

ROOT = Path(__file__).resolve().parents[4]
CHECK = ROOT / ".github" / "scripts" / "check-tag-version.sh"


def _check(tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK), tag], capture_output=True, text=True, timeout=30, check=False
    )


def test_pyproject_takes_the_version_from_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    source = ROOT / pyproject["tool"]["hatch"]["version"]["path"]
    assert source == ROOT / "services" / "classifier" / "src" / "classifier" / "__init__.py"
    assert f'__version__ = "{__version__}"' in source.read_text(encoding="utf-8").splitlines()


def test_a_tag_naming_the_version_passes() -> None:
    result = _check(f"v{__version__}")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tag v{__version__} matches version {__version__}"


def test_a_tag_naming_another_version_is_refused() -> None:
    result = _check("v99.0.0")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"::error::tag v99.0.0 does not match the version in classifier/__init__.py ({__version__})"
    )


def test_the_release_workflow_checks_the_tag_before_ci_and_publishing() -> None:
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")

    assert 'run: .github/scripts/check-tag-version.sh "$GITHUB_REF_NAME"' in workflow
    assert "  ci:\n    name: ci\n    needs: version\n" in workflow
    assert "    needs: [version, ci]\n" in workflow
