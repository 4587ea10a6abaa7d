"""An app started through its lifespan, behind an in-process httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from classifier.core.config import Settings
from classifier.main import create_app


@asynccontextmanager
async def lifespan_client(
    app: ASGIApp, around: Callable[[ASGIApp], ASGIApp] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` once its lifespan has started (and until it has stopped); ``around``
    wraps the started app, standing in for what a server adds to each request."""
    async with LifespanManager(app) as manager:
        served = manager.app if around is None else around(manager.app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served), base_url="http://testserver"
        ) as client:
            yield client


@asynccontextmanager
async def app_client(
    model_dir: Path, around: Callable[[ASGIApp], ASGIApp] | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app serving ``model_dir``: no fluentd, quiet stdout, unless
    ``settings`` say otherwise."""
    chosen: dict[str, Any] = {"fluentd_host": None, "access_log_stdout": False, **settings}
    async with lifespan_client(create_app(Settings(model_dir=model_dir, **chosen)), around) as c:
        yield c
