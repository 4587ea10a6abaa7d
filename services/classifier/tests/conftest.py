"""Fixtures that make data (model folders, settings, apps, clients); assertions live in tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from classifier.core.config import Settings
from classifier.main import create_app
from tests.support.app_client import lifespan_client
from tests.support.postgres import SHARED_URL, answers, private_postgres, scratch_database
from tests.support.tiny_models import write_model_dir


@pytest.fixture(autouse=True)
def _no_classifier_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read CLASSIFIER_* variables: what a developer's shell exports must not change
    what a test sees. Tests that are about the environment set what they need themselves."""
    for name in list(os.environ):
        if name.startswith("CLASSIFIER_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def data_dir(
    _no_classifier_variables: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A data folder (job store, uploads, results) of the test's own, for every app and server
    the test starts, so none of them writes into the checkout's default one."""
    folder = tmp_path / "data"
    monkeypatch.setenv("CLASSIFIER_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder with the brightness test model and its manifest."""
    return write_model_dir(tmp_path / "brightness")


@pytest.fixture
def settings(model_dir: Path) -> Settings:
    return Settings(model_dir=model_dir, fluentd_host=None, access_log_stdout=False)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_client(app) as http:
        yield http


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server: the machine's shared one when it answers, else a private
    one started from the local binaries for this test session."""
    if answers(SHARED_URL):
        yield SHARED_URL
        return
    with private_postgres() as server:
        yield server.url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of this test's own (runs and tests never see each other's jobs)."""
    with scratch_database(postgres_server) as url:
        yield url
