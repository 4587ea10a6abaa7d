"""A real headless Chromium, the machine's own, driven by Playwright: every request it makes is
recorded, and any that is not for the service under test is blocked and reported."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    sync_playwright,
)

# Debian's chromium (make chromium installs it). Playwright never downloads a browser of its own
# here; CHROMIUM_PATH points at another build where the machine keeps one.
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # runs as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Before any of the page's own scripts: collect what the Content-Security-Policy refused.
# (Init scripts come through the DevTools protocol, which the page's policy does not govern.)
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@dataclass
class Browsing:
    """One browser profile pointed at ``origin`` (and any origin ``allow`` adds, until
    ``reset``), with what its pages asked for and said."""

    context: BrowserContext
    origin: str
    allowed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.allowed[:] = [self.origin]
        self.requests.clear()
        self.blocked.clear()
        self.console.clear()

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        return page

    def allow(self, origin: str) -> None:
        """Let pages reach one more service under test (another server on loopback)."""
        self.allowed.append(origin)

    def _home(self, url: str) -> bool:
        return any(url.startswith((f"{o}/", f"blob:{o}/")) for o in self.allowed)

    def foreign_requests(self) -> list[str]:
        """Requests for anything but the services under test (blob: URLs never leave the page)."""
        return [url for url in self.requests if not self._home(url)]

    def csp_messages(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def _route(self, route: Route) -> None:
        url = route.request.url
        if self._home(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")


def csp_violations(page: Page) -> list[str]:
    found: Any = page.evaluate("window.__cspViolations || []")
    return [str(item) for item in found]


@contextmanager
def chromium(origin: str) -> Iterator[Browsing]:
    """Chromium headless with a new, empty profile, allowed to reach ``origin`` only."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: `make chromium` installs Debian's chromium, "
            "or set CHROMIUM_PATH to another build"
        )
    with (
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            browsing = Browsing(context, origin, allowed=[origin])
            context.route("**/*", browsing._route)
            context.on("request", browsing._on_request)
            context.on("console", browsing._on_console)
            context.add_init_script(script=CSP_LISTENER)
            for page in context.pages:  # the blank tab a persistent profile opens with
                page.close()
            yield browsing
        finally:
            context.close()
