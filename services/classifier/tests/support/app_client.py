"""An app started through its lifespan, behind an in-process httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from classifier.core.config import Settings
from classifier.main import create_app


@asynccontextmanager
async def app_client(model_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app serving ``model_dir``: no fluentd, quiet stdout, unless
    ``settings`` say otherwise."""
    chosen: dict[str, Any] = {"fluentd_host": None, "access_log_stdout": False, **settings}
    app = create_app(Settings(model_dir=model_dir, **chosen))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client
