"""/docs (Swagger UI) and /redoc render from the service's own files, with no network, under
their own Content-Security-Policy and without violating it."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import Browsing, csp_violations
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def operations(server: ServerProcess) -> list[tuple[str, str, str]]:
    spec = httpx.get(server.url + "/openapi.json").json()
    return [
        (method.upper(), path, operation["summary"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def assert_offline_and_clean(page: Page, browsing: Browsing, server: ServerProcess) -> None:
    assert browsing.foreign_requests() == []
    assert browsing.blocked == []
    assert csp_violations(page) == []
    assert browsing.csp_messages() == []
    errors = [line for line in browsing.console if line.startswith("error:")]
    assert errors == []
    assert all(url.startswith(server.url + "/") for url in browsing.requests)


def test_swagger_ui_lists_every_operation(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    expected = operations(server)
    response = page.goto(server.url + "/docs")

    assert response is not None
    assert response.headers["content-security-policy"] == DOCS_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(expected))
    shown = set(
        zip(
            page.locator(".opblock .opblock-summary-method").all_inner_texts(),
            page.locator(".opblock .opblock-summary-path").all_inner_texts(),
            strict=True,
        )
    )
    assert shown == {(method, path) for method, path, _ in expected}
    expect(page.get_by_text("Classify one sequence of frames")).to_be_visible()
    requested = {url.removeprefix(server.url) for url in browsing.requests}
    assert {
        "/static/vendor/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui.css",
        "/static/docs-init.js",
        "/openapi.json",
    } <= requested
    assert_offline_and_clean(page, browsing, server)


def test_redoc_renders_every_operation_and_its_search(
    page: Page, server: ServerProcess, browsing: Browsing
) -> None:
    expected = operations(server)
    response = page.goto(server.url + "/redoc")

    assert response is not None
    assert response.headers["content-security-policy"] == DOCS_POLICY
    # ReDoc's side menu: one entry per operation, its method ("del" for DELETE) then its summary.
    items = page.locator("li[data-item-id*='/operation/']")
    expect(items).to_have_count(len(expected))
    squeezed = {"".join(text.split()) for text in items.all_inner_texts()}
    badge = {"DELETE": "del"}
    assert squeezed == {
        "".join(f"{badge.get(m, m.lower())}{summary}".split()) for m, _, summary in expected
    }
    # Redocly's logo, which the bundle always loads from their CDN, is the service's icon here.
    expect(page.locator("img[alt='redocly logo']")).to_have_attribute("src", "/static/icon.svg")
    # Search runs in ReDoc's blob: worker, which the policy allows.
    page.get_by_placeholder("Search...").fill("manifest")
    results = page.locator("[data-role='search:results'] li")
    expect(results.filter(has_text="One model's manifest as served")).to_have_count(1)
    assert_offline_and_clean(page, browsing, server)
