"""Security headers: one Content-Security-Policy per kind of document, and the headers every
response carries (added by ``SecurityHeadersMiddleware``, outermost, so errors get them too)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(**directives: str) -> str:
    return "; ".join(f"{name.replace('_', '-')} {value}" for name, value in directives.items())


# The web page: its own script, style and images, fetches to this origin only, nothing inline
# (no inline script or style, no eval), and Trusted Types with no policy at all, so no string can
# ever reach an HTML sink (the page builds its DOM with textContent). Images: the ethogram and
# the frame thumbnails are blob: URLs made from fetched or chosen files.
PAGE_POLICY = _policy(
    default_src="'none'",
    script_src="'self'",
    style_src="'self'",
    img_src="'self' blob:",
    connect_src="'self'",
    base_uri="'none'",
    form_action="'none'",
    frame_ancestors="'none'",
    require_trusted_types_for="'script'",
    trusted_types="'none'",
)

# /docs (Swagger UI) and /redoc: their bundles and our external start-up scripts from this
# origin; their inline styles (both set style attributes, ReDoc injects <style>), data: icons in
# Swagger UI's CSS, ReDoc's search in a blob: worker; still no remote host.
DOCS_POLICY = _policy(
    default_src="'none'",
    script_src="'self'",
    style_src="'self' 'unsafe-inline'",
    img_src="'self' data: blob:",
    font_src="'self' data:",
    connect_src="'self'",
    worker_src="'self' blob:",
    base_uri="'none'",
    form_action="'none'",
    frame_ancestors="'none'",
)

# Everything else (JSON, CSV, PNG, the assets): a document that runs nothing, should a browser
# ever render one.
DEFAULT_POLICY = _policy(default_src="'none'", frame_ancestors="'none'")

CSP = b"content-security-policy"
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_DEFAULT_CSP = (CSP, DEFAULT_POLICY.encode("ascii"))


class SecurityHeadersMiddleware:
    """Adds nosniff, Referrer-Policy and X-Frame-Options to every HTTP response, and the default
    policy to those whose route did not set a Content-Security-Policy of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in ALWAYS if header[0] not in present)
                if CSP not in present:
                    headers.append(_DEFAULT_CSP)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
