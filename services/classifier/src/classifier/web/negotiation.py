"""Which representation of ``GET /`` a client asked for: the web page or the JSON document."""

from __future__ import annotations


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def prefers_html(accept: str | None) -> bool:
    """True when ``accept`` names ``text/html`` itself and ranks it at least as high as JSON.

    Browsers list ``text/html`` first. curl, httpx and most API clients send ``*/*`` (or nothing,
    or ``application/json``) and so keep getting the JSON document, as before the page existed.
    """
    if not accept:
        return False
    html: float | None = None
    json = 0.0
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if media == "text/html":
            html = max(html or 0.0, quality)
        elif media == "application/json":
            json = max(json, quality)
    return html is not None and html > 0 and html >= json
