"""One real classifier (the bundled model, uvicorn on loopback) and one headless Chromium for
the browser tests, started once for this folder; a fresh page (so a fresh tab) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from classifier.core.config import DEFAULT_MODEL_DIR
from tests.support.browser import Browsing, chromium
from tests.support.server import ServerProcess, running_classifier


@pytest.fixture(scope="package")
def browser_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-data")


@pytest.fixture(scope="package")
def server(browser_data_dir: Path) -> Iterator[ServerProcess]:
    env = {"CLASSIFIER_WORKERS": "1", "CLASSIFIER_DATA_DIR": str(browser_data_dir)}
    with running_classifier(DEFAULT_MODEL_DIR, env=env) as process:
        yield process


@pytest.fixture(scope="package")
def browsing(server: ServerProcess) -> Iterator[Browsing]:
    with chromium(server.url) as session:
        yield session


@pytest.fixture
def page(browsing: Browsing) -> Iterator[Page]:
    browsing.reset()
    tab = browsing.new_page()
    yield tab
    tab.close()
