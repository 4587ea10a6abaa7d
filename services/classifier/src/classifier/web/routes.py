"""The browser-facing routes: the page (served by ``GET /`` to browsers, see api/routes/meta),
``/docs`` and ``/redoc`` from self-hosted assets, and the ``/static`` mounts behind them."""

from __future__ import annotations

import os
from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from classifier.web.headers import DOCS_POLICY, PAGE_POLICY

WEB_DIR = Path(__file__).resolve().parent
PAGE = WEB_DIR / "index.html"
STATIC_DIR = WEB_DIR / "static"
# Swagger UI and ReDoc as released, shipped inside the fastapi-offline wheel (pinned and hashed
# in the lock files like every dependency): served from here, never from a CDN.
VENDOR_DIR = Path(str(files("fastapi_offline") / "static"))

STATIC_PATH = "/static"
VENDOR_PATH = "/static/vendor"

#: /docs and /redoc; left out when CLASSIFIER_DOCS_ACCESS=off.
docs_router = APIRouter(include_in_schema=False)


class RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate on every use (a cheap 304), so a new release's
    page never runs with last release's script from the cache."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_assets(app: FastAPI) -> None:
    # The vendor mount first: routes match in order and "/static" would claim its paths.
    app.mount(VENDOR_PATH, RevalidatedStaticFiles(directory=VENDOR_DIR), name="vendor")
    app.mount(STATIC_PATH, RevalidatedStaticFiles(directory=STATIC_DIR), name="static")


def page_response() -> Response:
    """The web page: static HTML whose script and styles come from ``/static``."""
    return FileResponse(
        PAGE,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": PAGE_POLICY,
            "Cache-Control": "no-cache",
            "Vary": "Accept",
        },
    )


def _docs_page(request: Request, title: str, head: list[str], body: list[str]) -> HTMLResponse:
    lines = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(request.app.title)} - {title}</title>",
        f'<link rel="icon" href="{_root(request)}{STATIC_PATH}/icon.svg" type="image/svg+xml">',
        *head,
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
    ]
    return HTMLResponse("\n".join(lines), headers={"Content-Security-Policy": DOCS_POLICY})


def _root(request: Request) -> str:
    """The path prefix a proxy mounts the service under (``root_path``), as FastAPI's own
    docs pages honour it."""
    return escape(str(request.scope.get("root_path", "")), quote=True)


def _openapi_url(request: Request) -> str:
    return _root(request) + escape(request.app.openapi_url or "/openapi.json", quote=True)


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    # The start-up script is a file of ours, not an inline script, so the policy needs no hash;
    # it reads the spec's URL from the data attribute.
    root = _root(request)
    return _docs_page(
        request,
        "Swagger UI",
        [
            f'<link rel="stylesheet" href="{root}{VENDOR_PATH}/swagger-ui.css">',
            f'<script src="{root}{VENDOR_PATH}/swagger-ui-bundle.js" defer></script>',
            f'<script src="{root}{STATIC_PATH}/docs-init.js" defer></script>',
        ],
        [f'<div id="swagger-ui" data-openapi-url="{_openapi_url(request)}"></div>'],
    )


@docs_router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    # ReDoc's standalone bundle starts itself on the <redoc> element; redoc-init.js only keeps
    # its one remote image (Redocly's logo) local.
    root = _root(request)
    return _docs_page(
        request,
        "ReDoc",
        [f'<link rel="stylesheet" href="{root}{STATIC_PATH}/redoc.css">'],
        [
            f'<redoc spec-url="{_openapi_url(request)}"></redoc>',
            f'<script src="{root}{STATIC_PATH}/redoc-init.js"></script>',
            f'<script src="{root}{VENDOR_PATH}/redoc.standalone.js"></script>',
        ],
    )
