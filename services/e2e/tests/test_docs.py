"""The OpenAPI document and the interactive docs page that is built from it."""

from __future__ import annotations

import httpx

from tests.served_model import ServedModel

ROUTES = {
    ("post", "/predict"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{name}"),
    ("post", "/v1/models/{name}/classify"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
    ("get", "/v2"),
    ("get", "/v2/models/{name}"),
    ("post", "/v2/models/{name}/infer"),
}


async def test_openapi_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]
    listed = {(method, path) for path, item in document["paths"].items() for method in item}
    assert listed >= ROUTES, f"missing from /openapi.json: {sorted(ROUTES - listed)}"


async def test_openapi_describes_uploads_as_files(client: httpx.AsyncClient) -> None:
    """/docs can only offer a file picker when the body is declared as binary parts."""
    document = (await client.get("/openapi.json")).json()

    for path, field in (("/v1/models/{name}/classify", "frames"), ("/predict", "images")):
        operation = document["paths"][path]["post"]
        assert operation.get("description") or operation.get("summary")
        schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        upload = schema["properties"][field]
        assert upload["type"] == "array"
        assert upload["items"]["format"] == "binary"


async def test_docs_page_loads_the_openapi_ui(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


async def test_model_name_in_openapi_examples_is_served(
    client: httpx.AsyncClient, model: ServedModel
) -> None:
    """The example on the classify route works as given: it names the served model."""
    document = (await client.get("/openapi.json")).json()
    parameters = document["paths"]["/v1/models/{name}/classify"]["post"]["parameters"]
    name = next(p for p in parameters if p["name"] == "name")

    assert model.name in name["schema"].get("examples", []) + name.get("examples", [])
