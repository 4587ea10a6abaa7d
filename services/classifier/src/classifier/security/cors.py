"""Cross-origin access for browser apps on other origins: off unless origins are listed.

Keys travel in headers, never cookies, so credentials stay off; the allowed request headers are
the ones the API reads, and the exposed response headers the ones a client needs to see.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOWED_METHODS = ("GET", "POST", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    "X-API-Key",
    "X-Request-ID",
    "Content-Type",
    "Content-Encoding",
    "Inference-Header-Content-Length",
)
EXPOSED_HEADERS = (
    "X-Request-ID",
    "Retry-After",
    "WWW-Authenticate",
    "Location",
    "Content-Disposition",
    "Inference-Header-Content-Length",
)
PREFLIGHT_MAX_AGE_S = 600


def install_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers for ``origins``; call after every other middleware
    is added, so it sits outermost: a preflight carries no key and must not meet the key check."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(ALLOWED_METHODS),
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE_S,
    )
