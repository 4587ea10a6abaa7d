"""Settings: read from CLASSIFIER_* variables, and every one documented where users look."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from classifier.core.config import DEFAULT_MODEL_DIR, Settings

ROOT = Path(__file__).resolve().parents[4]


def _variables() -> list[str]:
    return [f"CLASSIFIER_{name.upper()}" for name in Settings.model_fields]


def test_defaults_serve_the_bundled_model_on_loopback() -> None:
    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.model_dir == DEFAULT_MODEL_DIR
    assert (DEFAULT_MODEL_DIR / "manifest.json").is_file()
    assert settings.worker_processes >= 1


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_PORT", "9001")
    monkeypatch.setenv("CLASSIFIER_WORKERS", "3")
    monkeypatch.setenv("CLASSIFIER_FLUENTD_HOST", "logs")

    settings = Settings()

    assert (settings.port, settings.worker_processes, settings.fluentd_host) == (9001, 3, "logs")


def test_a_malformed_value_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_PORT", "http")
    with pytest.raises(ValidationError, match="port"):
        Settings()


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text(encoding="utf-8")
    missing = [name for name in _variables() if name not in text]
    assert missing == []
