"""``GET /v1/models`` and ``GET /v1/models/{name}``: the manifest as served."""

from __future__ import annotations

import re

import httpx

from tests.served_model import ServedModel


async def test_model_list_describes_the_served_model(
    client: httpx.AsyncClient, model: ServedModel
) -> None:
    response = await client.get("/v1/models")

    assert response.status_code == 200
    (served,) = [entry for entry in response.json()["models"] if entry["name"] == model.name]
    assert served["ready"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", served["sha256"])
    assert served["description"]
    assert len(served["labels"]) == len(set(served["labels"])) >= 2
    spec = served["input"]
    assert spec["shape"] == [-1, spec["frames"], spec["height"], spec["width"], spec["channels"]]
    assert served["output"]["name"]
    assert served["output"]["kind"] in ("logits", "probabilities")
    assert isinstance(served["provenance"], dict)


async def test_one_model_by_name_matches_the_list(
    client: httpx.AsyncClient, model: ServedModel
) -> None:
    listed = (await client.get("/v1/models")).json()["models"]
    response = await client.get(f"/v1/models/{model.name}")

    assert response.status_code == 200
    assert response.json() in listed
