"""The page, /docs and /redoc as HTTP documents: negotiation at ``/``, their exact policies, the
headers on every response, and assets that are all served here and name no other host."""

from __future__ import annotations

import re

import httpx
import pytest

from classifier.web.routes import STATIC_DIR, WEB_DIR

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'"
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_browser_gets_the_page_under_its_own_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Accept": BROWSER_ACCEPT})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_POLICY
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == "no-cache"
    assert_common_headers(response)
    html = response.text
    assert '<script type="module" src="/static/app.js"></script>' in html
    # Nothing inline for the policy to refuse: every script has a src, no style attribute.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert " style=" not in html
    assert "<style" not in html
    assert re.findall(r"\son[a-z]+=", html) == []  # no inline event handlers either


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
async def test_api_clients_keep_the_json_document(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = await client.get("/", headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Accept"
    assert response.json()["models"] == ["brightness"]
    assert response.headers["content-security-policy"] == DEFAULT_POLICY
    assert_common_headers(response)


async def test_errors_carry_the_headers_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-security-policy"] == DEFAULT_POLICY
    assert_common_headers(response)


@pytest.mark.parametrize(
    ("path", "scripts"),
    [
        ("/docs", ["/static/vendor/swagger-ui-bundle.js", "/static/docs-init.js"]),
        ("/redoc", ["/static/redoc-init.js", "/static/vendor/redoc.standalone.js"]),
    ],
)
async def test_docs_pages_use_local_files_under_their_policy(
    client: httpx.AsyncClient, path: str, scripts: list[str]
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_POLICY
    assert_common_headers(response)
    html = response.text
    assert re.findall(r'<script src="([^"]+)"', html) == scripts
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "http://" not in html
    assert "https://" not in html
    for asset in ASSET.findall(html):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["cache-control"] == "no-cache", asset
        assert served.headers["x-content-type-options"] == "nosniff"


async def test_the_page_assets_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    html = (await client.get("/", headers={"Accept": "text/html"})).text
    types = {}
    for asset in ASSET.findall(html):
        if not asset.startswith("/static/"):
            continue  # the links to /docs, /redoc and #main
        served = await client.get(asset)
        assert served.status_code == 200, asset
        types[asset] = served.headers["content-type"].split(";")[0]

    assert types == {
        "/static/icon.svg": "image/svg+xml",
        "/static/app.css": "text/css",
        "/static/app.js": "text/javascript",
    }


async def test_static_files_stay_inside_their_folder(client: httpx.AsyncClient) -> None:
    for path in ("/static/../index.html", "/static/%2e%2e/routes.py", "/static/nope.js"):
        assert (await client.get(path)).status_code == 404, path


def test_no_asset_of_ours_names_another_host() -> None:
    """Everything the page loads is ours; the one exception names the address it replaces."""
    files = [WEB_DIR / "index.html", *sorted(STATIC_DIR.iterdir())]
    named = {
        path.name: sorted(set(re.findall(r"https?://[^\s\"'`)]+", path.read_text())))
        for path in files
    }

    assert {name: hosts for name, hosts in named.items() if hosts} == {
        "icon.svg": ["http://www.w3.org/2000/svg"],  # the SVG namespace, never fetched
        "redoc-init.js": ["https://cdn.redoc.ly/"],
    }
