"""Which Accept headers get the web page at ``GET /`` and which keep the JSON document."""

from __future__ import annotations

import pytest

from classifier.web.negotiation import prefers_html

CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept", [CHROMIUM, FIREFOX, "text/html", "TEXT/HTML; q=1"])
def test_browsers_get_the_page(accept: str) -> None:
    assert prefers_html(accept) is True


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",  # curl, httpx, requests
        "application/json",
        "application/json, text/html;q=0.5",
        "text/html;q=0",
        "text/*",
        "text/html;q=oops",
    ],
)
def test_api_clients_keep_the_json_document(accept: str | None) -> None:
    assert prefers_html(accept) is False


def test_equal_preference_goes_to_the_page() -> None:
    assert prefers_html("application/json, text/html") is True
