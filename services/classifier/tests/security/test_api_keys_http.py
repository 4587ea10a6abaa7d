"""API keys over HTTP, against the real app: every route family with no key, a wrong key, a
revoked key (revoked by rewriting the file while the app runs) and the right key; public paths;
the per-key rate; /metrics and /docs modes; CORS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from classifier.core.config import Settings
from classifier.core.errors import KeysFileError
from classifier.main import create_app
from tests.support.api_keys import IssuedKeys, ManualClock, next_reload, use_clock
from tests.support.app_client import lifespan_client
from tests.support.frames import files, sequence

PROBLEM_BASE = "https://github.com/image-sequence-classifier/problems/"
CHALLENGE = 'Bearer realm="image-sequence-classifier"'
INVALID_CHALLENGE = CHALLENGE + ', error="invalid_token"'


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    problem: bool  # /v1 and the rest answer problem details; /v2 and /predict {"error"}
    body: str | None = None  # "frames", "images" (multipart) or "oip" (JSON tensors)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("GET", "/v1/models", problem=True),
    Route("GET", "/v1/models/brightness", problem=True),
    Route("POST", "/v1/models/brightness/classify", problem=True, body="frames"),
    Route("POST", "/predict", problem=False, body="images"),
    Route("GET", "/v2", problem=False),
    Route("GET", "/v2/models/brightness", problem=False),
    Route("GET", "/v2/models/brightness/ready", problem=False),
    Route("POST", "/v2/models/brightness/infer", problem=False, body="oip"),
]
PUBLIC = ["/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/"]
DOCS = ["/docs", "/redoc", "/openapi.json"]


def oip_body() -> bytes:
    pixels = np.full((1, 24, 64, 64, 1), 255, dtype=np.uint8)
    document = {
        "inputs": [{"name": "frames", "shape": list(pixels.shape), "datatype": "UINT8", "data": []}]
    }
    document["inputs"][0]["data"] = pixels.ravel().tolist()
    return json.dumps(document).encode()


async def send(
    http: httpx.AsyncClient, route: Route, headers: dict[str, str] | None = None
) -> httpx.Response:
    if route.body in ("frames", "images"):
        return await http.post(route.path, files=files(route.body, sequence(255)), headers=headers)
    if route.body == "oip":
        return await http.post(route.path, content=oip_body(), headers=headers)
    return await http.request(route.method, route.path, headers=headers)


def assert_served(route: Route, response: httpx.Response) -> None:
    """The route's real answer, not merely a 200."""
    assert response.status_code == 200, response.text
    body = response.json()
    if route.path.endswith("/classify"):
        assert body["label"] == "bright"
    elif route.path == "/predict":
        assert body["predicted_class"] == 3
    elif route.path.endswith("/infer"):
        assert body["model_name"] == "brightness"
        assert np.argmax(body["outputs"][0]["data"]) == 3
    elif route.path == "/v2":
        assert body["name"] == "image-sequence-classifier"
    elif route.path == "/v1/models":
        assert [m["name"] for m in body["models"]] == ["brightness"]
    else:
        assert body["name"] == "brightness"


def assert_refused(route: Route, response: httpx.Response, detail: str, challenge: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    request_id = response.headers["x-request-id"]
    if route.problem:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": PROBLEM_BASE + "api-key-required",
            "title": "API key required",
            "status": 401,
            "detail": detail,
            "instance": route.path,
            "request_id": request_id,
        }
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": detail}


MISSING = (
    "this route needs an API key: send it as 'Authorization: Bearer <key>' "
    "or in an 'X-API-Key' header"
)


@dataclass
class KeyedApp:
    app: FastAPI
    http: httpx.AsyncClient
    clock: ManualClock
    issued: IssuedKeys


def keyed_settings(model_dir: Path, issued: IssuedKeys, **settings: Any) -> Settings:
    chosen: dict[str, Any] = {"fluentd_host": None, "access_log_stdout": False, **settings}
    return Settings(model_dir=model_dir, api_keys_file=issued.path, **chosen)


@pytest.fixture
def keyed_factory(model_dir: Path, issued: IssuedKeys) -> Any:
    def start(**settings: Any) -> Any:
        @asynccontextmanager
        async def started() -> AsyncIterator[KeyedApp]:
            app = create_app(keyed_settings(model_dir, issued, **settings))
            clock = ManualClock()
            use_clock(app, clock)
            async with lifespan_client(app) as http:
                yield KeyedApp(app, http, clock, issued)

        return started()

    return start


@pytest.fixture
async def keyed(keyed_factory: Any) -> AsyncIterator[KeyedApp]:
    async with keyed_factory() as started:
        yield started


# --- every protected route family -----------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_no_key_is_401_with_a_challenge_in_the_familys_format(
    keyed: KeyedApp, route: Route
) -> None:
    assert_refused(route, await send(keyed.http, route), MISSING, CHALLENGE)


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_a_wrong_key_is_401_invalid_token(keyed: KeyedApp, route: Route) -> None:
    lab = keyed.issued.keys["lab"]
    forged = lab[:-1] + ("A" if lab[-1] != "A" else "B")
    for headers in (
        {"Authorization": f"Bearer {forged}"},
        {"X-API-Key": "hunter2"},
        {"Authorization": "Bearer isc_000000000000_" + "A" * 43},
    ):
        response = await send(keyed.http, route, headers)
        assert_refused(route, response, "the API key is not valid", INVALID_CHALLENGE)


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_the_right_key_is_served_by_either_header(keyed: KeyedApp, route: Route) -> None:
    key = keyed.issued.keys["lab"]

    assert_served(route, await send(keyed.http, route, {"Authorization": f"Bearer {key}"}))
    assert_served(route, await send(keyed.http, route, {"authorization": f"bearer {key}"}))
    assert_served(route, await send(keyed.http, route, {"X-API-Key": key}))


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_a_key_revoked_in_the_file_stops_without_a_restart(
    keyed: KeyedApp, route: Route
) -> None:
    assert_served(route, await send(keyed.http, route, keyed.issued.bearer("lab")))

    keyed.issued.revoke("lab")
    next_reload(keyed.clock)

    response = await send(keyed.http, route, keyed.issued.bearer("lab"))
    assert_refused(route, response, "the API key has been revoked", INVALID_CHALLENGE)
    assert_served(route, await send(keyed.http, route, keyed.issued.bearer("boss")))


async def test_a_key_added_to_the_file_works_without_a_restart(keyed: KeyedApp) -> None:
    assert (
        await keyed.http.get("/v1/models", headers=keyed.issued.bearer("lab"))
    ).status_code == 200
    added = keyed.issued.add("newcomer")
    response = await keyed.http.get("/v1/models", headers={"X-API-Key": added})
    assert response.status_code == 401  # the file is looked at once a second at most

    next_reload(keyed.clock)

    assert (await keyed.http.get("/v1/models", headers={"X-API-Key": added})).status_code == 200


async def test_an_unknown_path_needs_a_key_before_it_is_a_404(keyed: KeyedApp) -> None:
    assert (await keyed.http.get("/v1/nowhere")).status_code == 401
    assert (
        await keyed.http.get("/v1/nowhere", headers=keyed.issued.bearer("lab"))
    ).status_code == (404)


async def test_a_refused_upload_is_never_read(keyed: KeyedApp) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for n in range(1000):
            pulled.append(n)
            yield b"x" * 65536

    response = await keyed.http.post(
        "/v1/models/brightness/classify",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=B", "content-length": "65536000"},
    )

    assert response.status_code == 401
    assert pulled == []


# --- public paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PUBLIC, *DOCS, "/metrics"])
async def test_health_the_page_docs_and_metrics_are_open_by_default(
    keyed: KeyedApp, path: str
) -> None:
    response = await keyed.http.get(path)

    assert response.status_code == 200, path
    assert "www-authenticate" not in response.headers


async def test_static_assets_are_public(keyed: KeyedApp) -> None:
    # No asset of that name: the router answers, not the key check.
    response = await keyed.http.get("/static/page.js")

    assert response.status_code == 404
    assert "www-authenticate" not in response.headers


async def test_public_paths_are_a_setting(keyed_factory: Any) -> None:
    async with keyed_factory(public_paths=("/health/",)) as keyed:
        assert (await keyed.http.get("/health/live")).status_code == 200
        assert (await keyed.http.get("/health/ready")).status_code == 200
        assert (await keyed.http.get("/")).status_code == 401
        assert (await keyed.http.get("/v2/health/live")).status_code == 401
        assert (await keyed.http.get("/", headers=keyed.issued.bearer("lab"))).status_code == 200


async def test_a_prefix_does_not_open_its_neighbours(keyed: KeyedApp) -> None:
    # "/health/" opens /health/live, not /healthz or /health-admin; "/" opens only the page.
    for path in ("/healthz", "/health-admin", "/v1", "/staticfile"):
        assert (await keyed.http.get(path)).status_code == 401, path


# --- /metrics and /docs modes -------------------------------------------------------------------


async def test_metrics_with_key_mode_need_a_key(keyed_factory: Any) -> None:
    async with keyed_factory(metrics_access="key") as keyed:
        refused = await keyed.http.get("/metrics")
        served = await keyed.http.get("/metrics", headers=keyed.issued.bearer("lab"))

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == CHALLENGE
    assert refused.json()["detail"] == MISSING
    assert served.status_code == 200
    assert "classifier_requests_total" in served.text


async def test_metrics_off_are_not_served_with_or_without_a_key(
    keyed_factory: Any, model_dir: Path
) -> None:
    async with keyed_factory(metrics_access="off") as keyed:
        # Like any path not served: a key first, then the 404.
        assert (await keyed.http.get("/metrics")).status_code == 401
        answers = [await keyed.http.get("/metrics", headers=keyed.issued.bearer("boss"))]
    settings = Settings(model_dir=model_dir, fluentd_host=None, metrics_access="off")
    async with lifespan_client(create_app(settings)) as http:
        answers.append(await http.get("/metrics"))

    for response in answers:
        assert response.status_code == 404
        assert response.json()["detail"] == (
            "metrics are not served here (CLASSIFIER_METRICS_ACCESS=off)"
        )


def test_metrics_key_mode_without_a_keys_file_is_refused(model_dir: Path) -> None:
    with pytest.raises(ValidationError, match="metrics_access 'key' needs api_keys_file"):
        Settings(model_dir=model_dir, metrics_access="key")


async def test_docs_off_serve_no_docs_and_no_schema(keyed_factory: Any, model_dir: Path) -> None:
    async with keyed_factory(docs_access="off") as keyed:
        for path in DOCS:
            assert (await keyed.http.get(path)).status_code == 401, path
            response = await keyed.http.get(path, headers=keyed.issued.bearer("lab"))
            assert response.status_code == 404, path
        assert (await keyed.http.get("/health/live")).status_code == 200
    settings = Settings(model_dir=model_dir, fluentd_host=None, docs_access="off")
    async with lifespan_client(create_app(settings)) as http:
        for path in DOCS:
            assert (await http.get(path)).status_code == 404, path


async def test_the_openapi_document_declares_the_key_when_keys_are_on(
    keyed: KeyedApp, client: httpx.AsyncClient
) -> None:
    keyed_schema = (await keyed.http.get("/openapi.json")).json()
    open_schema = (await client.get("/openapi.json")).json()

    assert keyed_schema["components"]["securitySchemes"] == {
        "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer"},
        "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    assert keyed_schema["security"] == [{"bearerKey": []}, {"headerKey": []}]
    assert "securitySchemes" not in open_schema.get("components", {})
    assert "security" not in open_schema


# --- the per-key rate -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", [ROUTES[0], ROUTES[3]], ids=str)
async def test_over_its_rate_a_key_gets_429_and_recovers(keyed: KeyedApp, route: Route) -> None:
    slow = keyed.issued.bearer("slow")
    assert_served(route, await send(keyed.http, route, slow))
    assert_served(route, await send(keyed.http, route, slow))

    refused = await send(keyed.http, route, slow)

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    detail = (
        "API key 'slow' is over its limit rps=2 (requests per second, burst 2, counted in each "
        "server process); retry after 1 s"
    )
    if route.problem:
        assert refused.json()["type"] == PROBLEM_BASE + "limit-exceeded"
        assert refused.json()["detail"] == detail
    else:
        assert refused.json() == {"error": detail}
    assert_served(route, await send(keyed.http, route, keyed.issued.bearer("lab")))  # own bucket

    keyed.clock.advance(0.5)  # one token back at 2 per second
    assert_served(route, await send(keyed.http, route, slow))
    assert (await send(keyed.http, route, slow)).status_code == 429


async def test_the_default_rate_applies_to_keys_without_their_own(keyed_factory: Any) -> None:
    async with keyed_factory(api_key_rps=1) as keyed:
        lab, slow = keyed.issued.bearer("lab"), keyed.issued.bearer("slow")
        assert (await keyed.http.get("/v1/models", headers=lab)).status_code == 200
        limited = await keyed.http.get("/v1/models", headers=lab)
        assert limited.status_code == 429
        assert "rps=1 " in limited.json()["detail"]
        # slow's own limit (2) wins over the default.
        assert (await keyed.http.get("/v1/models", headers=slow)).status_code == 200
        assert (await keyed.http.get("/v1/models", headers=slow)).status_code == 200
        assert (await keyed.http.get("/v1/models", headers=slow)).status_code == 429


async def test_public_paths_and_refused_keys_take_no_tokens(keyed: KeyedApp) -> None:
    for _ in range(5):
        assert (
            await keyed.http.get("/health/live", headers=keyed.issued.bearer("slow"))
        ).status_code == 200
    assert (
        await keyed.http.get("/v1/models", headers=keyed.issued.bearer("slow"))
    ).status_code == 200
    assert (
        await keyed.http.get("/v1/models", headers=keyed.issued.bearer("slow"))
    ).status_code == 200


# --- keys off: the default ----------------------------------------------------------------------


async def test_without_a_keys_file_nothing_is_checked(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert app.state.service.access_control is None
    for route in ROUTES:
        assert_served(route, await send(client, route))
        assert_served(route, await send(client, route, {"Authorization": "Bearer nonsense"}))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read the API keys file"),
        ('{"name": "lab"}\n', "line 1: id: Field required"),
    ],
)
def test_a_missing_or_malformed_keys_file_stops_the_app(
    model_dir: Path, tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "keys.jsonl"
    if content is not None:
        path.write_text(content)

    with pytest.raises(KeysFileError, match=problem):
        create_app(Settings(model_dir=model_dir, fluentd_host=None, api_keys_file=path))


# --- CORS -----------------------------------------------------------------------------------------

ORIGIN = "https://lab.example"


def preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_is_off_by_default(client: httpx.AsyncClient, keyed: KeyedApp) -> None:
    # Keys off: OPTIONS has no route (405); keys on: a preflight carries no key (401).
    for http, headers, refused in (
        (client, {}, 405),
        (keyed.http, keyed.issued.bearer("lab"), 401),
    ):
        simple = await http.get("/v1/models", headers={"Origin": ORIGIN, **headers})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
        pre = await http.options("/v1/models", headers=preflight(ORIGIN))
        assert pre.status_code == refused
        assert "access-control-allow-origin" not in pre.headers


async def test_cors_allows_only_the_listed_origins(keyed_factory: Any) -> None:
    async with keyed_factory(cors_origins=(ORIGIN,)) as keyed:
        allowed = await keyed.http.options(
            "/v1/models/brightness/classify", headers=preflight(ORIGIN, "POST")
        )
        other = await keyed.http.options("/v1/models", headers=preflight("https://evil.example"))
        served = await keyed.http.get(
            "/v1/models", headers={"Origin": ORIGIN, **keyed.issued.bearer("lab")}
        )
        refused = await keyed.http.get("/v1/models", headers={"Origin": ORIGIN})
        foreign = await keyed.http.get(
            "/v1/models", headers={"Origin": "https://evil.example", **keyed.issued.bearer("lab")}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "x-api-key" in allowed_headers
    assert "access-control-allow-credentials" not in allowed.headers
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert served.status_code == 200
    assert served.headers["access-control-allow-origin"] == ORIGIN
    exposed = served.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "www-authenticate" in exposed
    assert "retry-after" in exposed
    # A browser page can read the 401 (and ask for a key), as it can the answer.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert foreign.status_code == 200
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    "origin", ["https://lab.example/", "lab.example", "https://lab.example/page", "ftp://x"]
)
def test_a_cors_origin_must_be_as_browsers_send_it(model_dir: Path, origin: str) -> None:
    with pytest.raises(ValidationError, match="a CORS origin is scheme://host"):
        Settings(model_dir=model_dir, cors_origins=(origin,))
