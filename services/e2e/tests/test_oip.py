"""The Open Inference Protocol (KServe v2 REST): metadata, health and inference on a clip."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest

from behaviour_clips import LABELS
from tests.oip import binary_infer_request, binary_probabilities, json_infer_request, output
from tests.served_model import ServedModel
from tests.uploads import ClipUploads


async def test_server_metadata_announces_binary_tensors(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"]
    assert body["version"]
    assert "binary_tensor_data" in body["extensions"]


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
async def test_server_health(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200, response.text


async def test_model_metadata(client: httpx.AsyncClient, model: ServedModel) -> None:
    response = await client.get(f"/v2/models/{model.name}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == model.name
    assert model.version in body["versions"]
    assert body["platform"] == "onnx_onnxv1"
    assert body["inputs"] == [
        {"name": model.input_name, "datatype": "FP32", "shape": [-1, *model.shape[1:]]}
    ]
    probabilities = [tensor for tensor in body["outputs"] if tensor["name"] == "probabilities"]
    assert probabilities == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model.labels)]}
    ]


async def test_model_ready(client: httpx.AsyncClient, model: ServedModel) -> None:
    response = await client.get(f"/v2/models/{model.name}/ready")

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("label", LABELS)
async def test_json_inference_agrees_with_classify(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, label: str
) -> None:
    """Same frames, same answer: the OIP tensor path and the /v1 upload path meet at the model."""
    request = json_infer_request(model, clips.pixels(label, 0), request_id=f"e2e-{label}")
    response = await client.post(model.infer_url, json=request)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == model.name
    assert body["model_version"] == model.version
    assert body["id"] == f"e2e-{label}"
    probabilities = output(body)
    assert probabilities["datatype"] == "FP32"
    assert probabilities["shape"] == [1, len(model.labels)]
    scores = np.asarray(probabilities["data"], dtype=np.float64)
    assert math.isclose(scores.sum(), 1.0, abs_tol=1e-4)
    assert int(scores.argmax()) == model.index(label), f"{label}: {scores.round(4).tolist()}"

    classified = await client.post(model.classify_url, files=clips.multipart("frames", label, 0))
    assert classified.status_code == 200, classified.text
    expected = [classified.json()["probabilities"][name] for name in model.labels]
    np.testing.assert_allclose(scores, expected, atol=1e-4)


async def test_uint8_inference_is_scaled_by_the_service(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    pixels = clips.pixels("groom", 0)
    as_uint8 = await client.post(model.infer_url, json=json_infer_request(model, pixels, "UINT8"))
    as_fp32 = await client.post(model.infer_url, json=json_infer_request(model, pixels, "FP32"))

    assert as_uint8.status_code == 200, as_uint8.text
    assert as_fp32.status_code == 200, as_fp32.text
    scores = np.asarray(output(as_uint8.json())["data"])
    assert int(scores.argmax()) == model.index("groom"), scores.round(4).tolist()
    np.testing.assert_allclose(scores, output(as_fp32.json())["data"], atol=1e-4)


@pytest.mark.parametrize("label", ["drink", "hang", "walk"])
async def test_binary_tensor_inference(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, label: str
) -> None:
    body, headers = binary_infer_request(model, [clips.pixels(label, 1)])
    response = await client.post(model.infer_url, content=body, headers=headers)

    assert response.status_code == 200, response.text
    scores = np.asarray(output(response.json())["data"])
    assert int(scores.argmax()) == model.index(label), f"{label}: {scores.round(4).tolist()}"


async def test_binary_batch_in_binary_out(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    """What a Triton client sends on the fast path: UINT8 pixels, probabilities back as bytes."""
    labels = ["eat", "rear", "walk"]
    batch = [clips.pixels(label, 2) for label in labels]
    body, headers = binary_infer_request(model, batch, "UINT8", binary_output=True)
    response = await client.post(model.infer_url, content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    scores = binary_probabilities(response)
    assert scores.shape == (len(labels), len(model.labels))
    assert [model.labels[i] for i in scores.argmax(axis=1)] == labels, scores.round(4).tolist()


async def test_json_without_a_content_type_is_accepted(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    """Some OIP clients send their JSON with no Content-Type at all."""
    request = json_infer_request(model, clips.pixels("rest", 0))
    response = await client.post(model.infer_url, content=json.dumps(request).encode("utf-8"))

    assert response.status_code == 200, response.text
    scores = np.asarray(output(response.json())["data"])
    assert int(scores.argmax()) == model.index("rest"), scores.round(4).tolist()
