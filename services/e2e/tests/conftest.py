"""Fixtures of the e2e suite: where the service is, one HTTP client for the run, the served model.

Configured by the environment, as the e2e image is:

* ``E2E_BASE_URL`` (required): the classifier, e.g. ``http://classifier:8000`` in compose or
  ``http://127.0.0.1:8000`` for ``make run``;
* ``E2E_LOG_DIR`` (optional): a folder where the classifier's shipped records arrive as JSON
  lines (fluentd's volume, or the forward receiver's folder); without it, the checks that access
  records arrived are skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.request_ledger import RequestLedger
from tests.served_model import ServedModel
from tests.uploads import ClipUploads

READY_TIMEOUT = 30.0  # seconds the service may still need when the run starts


def _base_url() -> str:
    url = os.environ.get("E2E_BASE_URL", "").rstrip("/")
    if not url:
        raise pytest.UsageError(
            "E2E_BASE_URL must name the classifier under test, e.g. http://127.0.0.1:8000"
        )
    return url


def _log_dir() -> Path | None:
    value = os.environ.get("E2E_LOG_DIR")
    return Path(value) if value else None


def pytest_configure(config: pytest.Config) -> None:
    _base_url()  # refuse to start without a target, before collecting anything


def pytest_report_header(config: pytest.Config) -> list[str]:
    log_dir = _log_dir()
    return [
        f"e2e target: {_base_url()}",
        f"e2e log dir: {log_dir if log_dir else 'none (log arrival checks skipped)'}",
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``after_all`` check what the whole run sent, so they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)


@pytest.fixture(scope="session")
def base_url() -> str:
    return _base_url()


@pytest.fixture(scope="session")
def log_dir() -> Path | None:
    return _log_dir()


@pytest.fixture(scope="session")
def ledger() -> RequestLedger:
    return RequestLedger()


@pytest.fixture(scope="session")
async def client(base_url: str, ledger: RequestLedger) -> AsyncIterator[httpx.AsyncClient]:
    """The run's HTTP client: every request gets its own X-Request-ID and goes in the ledger."""
    async with httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        event_hooks={"request": [ledger.on_request], "response": [ledger.on_response]},
    ) as http:
        await _wait_until_ready(http, base_url)
        yield http


async def _wait_until_ready(http: httpx.AsyncClient, base_url: str) -> None:
    """The harness and compose start the suite only once the service is ready; from a shell,
    the service may still be warming up. Anything else ends the run with one clear line."""
    problem = "no answer"
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        try:
            response = await http.get("/health/ready")
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return
            problem = f"/health/ready answered {response.status_code}"
        await asyncio.sleep(0.5)
    pytest.exit(f"the classifier at {base_url} is not ready ({problem})", returncode=3)


@pytest.fixture(scope="session")
async def model(client: httpx.AsyncClient) -> ServedModel:
    """The first model ``GET /v1/models`` lists: the default one."""
    response = await client.get("/v1/models")
    assert response.status_code == 200, response.text
    models = response.json()["models"]
    assert models, "the service serves no model"
    return ServedModel.from_manifest(models[0])


@pytest.fixture(scope="session")
def clips(model: ServedModel) -> ClipUploads:
    """Generated behaviour clips with the served model's sequence length and frame size."""
    return ClipUploads(frames=model.frames, size=model.height)
