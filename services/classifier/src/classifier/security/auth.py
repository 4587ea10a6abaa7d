"""The API-key check at the ASGI layer: which paths need a key, whose key it is, and its rate.

``AccessControl.check`` runs in ``RequestContextMiddleware`` for each HTTP request, after the
request id is set and before admission and before any byte of the body is read: a refused
4 GiB upload costs its headers. It is built only when a keys file is configured; without one
nothing here runs at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from starlette.types import Scope

from classifier.core.config import Settings
from classifier.core.errors import ApiKeyRequiredError, ClassifierError, LimitExceededError
from classifier.security.keys import EventSink, KeyEntry, KeyLimits, KeyRing
from classifier.security.limits import RateLimiter

#: Where the docs UI lives; opened or closed together by ``docs_access``.
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
DOCS_PREFIXES = ("/docs/", "/redoc/")
METRICS_PATH = "/metrics"

#: Scope state the check fills: the key's name (for the access record's ``api_key``; the key
#: itself is never stored anywhere), the caller (for ownership), and why a request was refused.
KEY_NAME_STATE = "api_key_name"
PRINCIPAL_STATE = "api_principal"
REFUSED_STATE = "access_refused"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's name, whether it is an admin, and its limits (defaults filled)."""

    name: str
    admin: bool
    limits: KeyLimits


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    api_key_header = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip().decode("latin-1")
        elif name == b"x-api-key" and value.strip():
            api_key_header = value.strip().decode("latin-1")
    return api_key_header


class AccessControl:
    """Decides, per request, whether it may go on; see the module docstring for where it runs."""

    def __init__(self, settings: Settings, keys: KeyRing, limiter: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter
        self.defaults = KeyLimits(
            rps=settings.api_key_rps or None,
            burst=settings.api_key_burst or None,
            max_running_jobs=settings.api_key_max_running_jobs or None,
            recording_bytes_per_day=settings.api_key_recording_bytes_per_day or None,
        )
        exact = {path for path in settings.public_paths if not path.endswith("/")}
        prefixes = {path for path in settings.public_paths if path.endswith("/")}
        if "/" in prefixes:  # "/" names the page, not a prefix of every path
            prefixes.discard("/")
            exact.add("/")
        if settings.docs_access == "open":
            exact.update(DOCS_PATHS)
            prefixes.update(DOCS_PREFIXES)
        # Turned off, /metrics and the docs are like any unknown path: 401 without a key, then 404.
        if settings.metrics_access == "open":
            exact.add(METRICS_PATH)
        self._principals: dict[str, tuple[KeyEntry, Principal]] = {}
        self._public_exact = frozenset(exact)
        self._public_prefixes = tuple(sorted(prefixes))

    @classmethod
    def from_settings(
        cls, settings: Settings, on_event: EventSink | None = None
    ) -> AccessControl | None:
        """The check ``settings`` ask for, or None when no keys file is set (keys off).

        Reads the keys file: raises ``KeysFileError`` when it is missing or malformed."""
        if settings.api_keys_file is None:
            return None
        return cls(settings, KeyRing(settings.api_keys_file, on_event=on_event), RateLimiter())

    def _principal(self, entry: KeyEntry) -> Principal:
        # Merging limits costs more than the rest of the check; do it once per version of an
        # entry (a re-read file makes new entries, so a changed limit is picked up).
        cached = self._principals.get(entry.id)
        if cached is not None and cached[0] is entry:
            return cached[1]
        principal = Principal(entry.name, entry.admin, entry.limits.over(self.defaults))
        self._principals[entry.id] = (entry, principal)
        return principal

    def is_public(self, path: str) -> bool:
        return path in self._public_exact or path.startswith(self._public_prefixes)

    def check(self, scope: Scope) -> ClassifierError | None:
        """None to let the request through (its scope state then names the caller), or the
        error to answer with (401 with a challenge, or 429 with ``Retry-After``)."""
        if self.is_public(scope["path"]):
            return None
        state: dict[str, Any] = scope.setdefault("state", {})
        try:
            entry = self.keys.authenticate(presented_key(scope["headers"]))
        except ApiKeyRequiredError as exc:
            state[REFUSED_STATE] = exc.reason
            return exc
        principal = self._principal(entry)
        limits = principal.limits
        state[KEY_NAME_STATE] = entry.name
        state[PRINCIPAL_STATE] = principal
        if limits.rps is not None:
            try:
                self.limiter.check(entry.name, limits.rps, limits.burst)
            except LimitExceededError as exc:
                state[REFUSED_STATE] = exc.limit
                return exc
        return None


async def get_principal(request: Request) -> Principal | None:
    """The caller, as the key check found it; None when keys are off (everyone is everyone)."""
    principal = getattr(request.state, PRINCIPAL_STATE, None)
    return principal if isinstance(principal, Principal) else None


PrincipalDep = Annotated[Principal | None, Depends(get_principal)]


#: How the OpenAPI document names the two ways of sending a key.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer"},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_api_keys(app: FastAPI) -> None:
    """Declare the key in the OpenAPI document, so /docs offers "Authorize" and sends the key
    with "Try it out" (the docs page itself stays public: a browser cannot send it a header)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI builds it once and keeps it
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        schema["security"] = [{name: []} for name in SECURITY_SCHEMES]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
