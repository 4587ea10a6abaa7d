"""The access-control settings as the environment gives them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from classifier.core.config import DEFAULT_PUBLIC_PATHS, Settings


def test_keys_are_off_and_everything_open_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEYS_FILE", "CORS_ORIGINS", "PUBLIC_PATHS", "METRICS_ACCESS"):
        monkeypatch.delenv(f"CLASSIFIER_{name}", raising=False)
    settings = Settings()

    assert settings.api_keys_file is None
    assert settings.cors_origins == ()
    assert settings.public_paths == DEFAULT_PUBLIC_PATHS
    assert (settings.docs_access, settings.metrics_access) == ("open", "open")
    assert (settings.api_key_rps, settings.api_key_max_running_jobs) == (0, 0)


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("", ()),
        ("https://lab.example", ("https://lab.example",)),
        (
            " https://a.example , http://b.example:8080 ",
            ("https://a.example", "http://b.example:8080"),
        ),
        ('["https://a.example", "*"]', ("https://a.example", "*")),
    ],
)
def test_cors_origins_are_a_comma_separated_list_or_a_json_array(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: tuple[str, ...]
) -> None:
    monkeypatch.setenv("CLASSIFIER_CORS_ORIGINS", value)

    assert Settings().cors_origins == origins


def test_public_paths_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_PUBLIC_PATHS", "/health/,/status")

    assert Settings().public_paths == ("/health/", "/status")


def test_a_public_path_without_a_leading_slash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_PUBLIC_PATHS", "/health/,static/")

    with pytest.raises(ValidationError, match="a public path starts with '/': 'static/'"):
        Settings()


@pytest.mark.parametrize(("name", "value"), [("DOCS_ACCESS", "key"), ("METRICS_ACCESS", "public")])
def test_access_modes_are_checked(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"CLASSIFIER_{name}", value)

    with pytest.raises(ValidationError, match=name.lower()):
        Settings()
