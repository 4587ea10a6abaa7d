"""The Open Inference Protocol routes in process: the protocol's JSON shapes, binary tensors,
errors, and the same answer as ``/v1`` classify for the same frames."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from PIL import Image

from classifier import __version__
from tests.support.app_client import app_client
from tests.support.frames import encode, files, gray_frame, sequence
from tests.support.tiny_models import write_model_dir

INFER = "/v2/models/brightness/infer"
CLASSIFY = "/v1/models/brightness/classify"
HEADER_LENGTH = "Inference-Header-Content-Length"
CLIP_SHAPE = (24, 64, 64, 1)

Pixels = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]


def _clip(start: int, step: int = 3) -> tuple[list[bytes], Pixels]:
    """24 PNG frames of rising brightness, and the pixels Pillow decodes from them."""
    pngs = [encode(gray_frame(min(start + step * i, 255))) for i in range(24)]
    frames = [np.asarray(Image.open(io.BytesIO(png))) for png in pngs]
    return pngs, np.stack(frames)[np.newaxis, ..., np.newaxis]


def _unit(pixels: Pixels) -> Floats:
    scaled: Floats = pixels.astype(np.float32) / np.float32(255.0)
    return scaled


def _json_body(values: npt.NDArray[Any], datatype: str, **request: Any) -> bytes:
    document = {
        **request,
        "inputs": [
            {
                "name": "frames",
                "shape": list(values.shape),
                "datatype": datatype,
                "data": values.ravel().tolist(),
            }
        ],
    }
    return json.dumps(document).encode()


def _binary_body(
    values: npt.NDArray[Any], datatype: str, **request: Any
) -> tuple[bytes, dict[str, str]]:
    raw = values.astype("<f4" if datatype == "FP32" else "u1").tobytes()
    document = {
        **request,
        "inputs": [
            {
                "name": "frames",
                "shape": list(values.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
    }
    header = json.dumps(document).encode()
    return header + raw, {HEADER_LENGTH: str(len(header))}


def _outputs(response: httpx.Response) -> dict[str, Floats]:
    """Every output of an inference response, JSON or binary, as float32 arrays."""
    length = response.headers.get(HEADER_LENGTH)
    body = response.content
    header = json.loads(body if length is None else body[: int(length)])
    offset = 0 if length is None else int(length)
    arrays: dict[str, Floats] = {}
    for output in header["outputs"]:
        assert output["datatype"] == "FP32"
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            values = np.array(output["data"], dtype=np.float32)
        else:
            values = np.frombuffer(body[offset : offset + size], dtype="<f4")
            offset += size
        arrays[output["name"]] = values.reshape(output["shape"])
    assert offset in (0, len(body))
    return arrays


async def _v1_probabilities(client: httpx.AsyncClient, pngs: list[bytes]) -> Floats:
    response = await client.post(CLASSIFY, files=files("frames", pngs))
    assert response.status_code == 200
    return np.array(list(response.json()["probabilities"].values()), dtype=np.float32)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    detail: str = body["error"]
    return detail


# --- server and model metadata -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
async def test_server_metadata(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": "image-sequence-classifier",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }


async def test_server_health(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")

    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


BRIGHTNESS_METADATA: dict[str, Any] = {
    "name": "brightness",
    "versions": ["0.0.1"],
    "platform": "onnx_onnxv1",
    "inputs": [{"name": "frames", "datatype": "FP32", "shape": [-1, 24, 64, 64, 1]}],
    "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "logits", "datatype": "FP32", "shape": [-1, 4]},
    ],
    "parameters": {
        "labels": '["dark","dim","mid","bright"]',
        "layout": "NTHWC",
        "scaling": "unit",
        "max_batch_size": 64,
    },
}


@pytest.mark.parametrize("path", ["/v2/models/brightness", "/v2/models/brightness/versions/0.0.1"])
async def test_model_metadata(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == BRIGHTNESS_METADATA


async def test_a_probabilities_model_offers_no_logits(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "p", output={"kind": "probabilities"})
    async with app_client(model_dir) as c:
        metadata = await c.get("/v2/models/brightness")
        _, pixels = _clip(100)
        answer = await c.post(INFER, content=_json_body(pixels, "UINT8"))
        asked = await c.post(
            INFER, content=_json_body(pixels, "UINT8", outputs=[{"name": "logits"}])
        )

    assert metadata.json()["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]}
    ]
    assert [o["name"] for o in answer.json()["outputs"]] == ["probabilities"]
    assert _error(asked, 400) == "unknown output 'logits'; this model's outputs are 'probabilities'"


@pytest.mark.parametrize(
    "path", ["/v2/models/brightness/ready", "/v2/models/brightness/versions/0.0.1/ready"]
)
async def test_model_ready(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.json() == {"name": "brightness", "ready": True}


NO_SUCH_MODEL = "no model named 'nope' is served (served: brightness)"
NO_SUCH_VERSION = "no model named 'brightness version 9' is served (served: brightness)"


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v2/models/nope", NO_SUCH_MODEL),
        ("GET", "/v2/models/nope/ready", NO_SUCH_MODEL),
        ("POST", "/v2/models/nope/infer", NO_SUCH_MODEL),
        ("GET", "/v2/models/brightness/versions/9", NO_SUCH_VERSION),
        ("GET", "/v2/models/brightness/versions/9/ready", NO_SUCH_VERSION),
        ("POST", "/v2/models/brightness/versions/9/infer", NO_SUCH_VERSION),
    ],
)
async def test_unknown_model_or_version_is_404(
    client: httpx.AsyncClient, method: str, path: str, message: str
) -> None:
    _, pixels = _clip(100)
    content = _json_body(pixels, "UINT8") if method == "POST" else None
    response = await client.request(method, path, content=content)

    assert _error(response, 404) == message


async def test_not_ready_is_503(app: Any) -> None:
    # No lifespan: the model never loads, as in the seconds after start-up.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as starting:
        ready = await starting.get("/v2/health/ready")
        live = await starting.get("/v2/health/live")
        server = await starting.get("/v2")
        metadata = await starting.get("/v2/models/brightness")
        model_ready = await starting.get("/v2/models/brightness/ready")
        infer = await starting.post(INFER, content=b"{}")

    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert ready.headers["retry-after"] == "1"
    assert (live.status_code, server.status_code) == (200, 200)
    for response in (metadata, model_ready, infer):
        assert _error(response, 503) == "the model is not loaded yet"


# --- inference: the same answer as /v1 -----------------------------------------------------------


@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
@pytest.mark.parametrize("transport", ["json", "binary"])
async def test_oip_answers_as_v1_classify_for_the_same_frames(
    client: httpx.AsyncClient, datatype: str, transport: str
) -> None:
    pngs, pixels = _clip(80)
    expected = await _v1_probabilities(client, pngs)
    values = pixels if datatype == "UINT8" else _unit(pixels)

    if transport == "json":
        request = client.build_request("POST", INFER, content=_json_body(values, datatype))
        # As some OIP clients send it: JSON with no Content-Type at all.
        assert "content-type" not in request.headers
    else:
        body, headers = _binary_body(values, datatype)
        request = client.build_request("POST", INFER, content=body, headers=headers)
    response = await client.send(request)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    outputs = _outputs(response)
    assert outputs["probabilities"].shape == (1, 4)
    assert np.allclose(outputs["probabilities"][0], expected, rtol=0, atol=1e-6)
    assert int(outputs["probabilities"][0].argmax()) == int(expected.argmax())


async def test_response_shape_echoes_the_id(client: httpx.AsyncClient) -> None:
    _, pixels = _clip(170)
    response = await client.post(
        INFER,
        content=_json_body(pixels, "UINT8", id="clip-42"),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["model_name", "model_version", "id", "outputs"]
    assert (body["model_name"], body["model_version"], body["id"]) == (
        "brightness",
        "0.0.1",
        "clip-42",
    )
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("probabilities", "FP32", [1, 4]),
        ("logits", "FP32", [1, 4]),
    ]
    assert all(len(o["data"]) == 4 and "parameters" not in o for o in body["outputs"])
    probabilities = np.array(body["outputs"][0]["data"])
    assert int(probabilities.argmax()) == 2  # mid
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)


async def test_logits_are_the_models_raw_output(client: httpx.AsyncClient, model_dir: Path) -> None:
    _, pixels = _clip(30, step=9)
    values = _unit(pixels)
    response = await client.post(
        INFER, content=_json_body(values, "FP32", outputs=[{"name": "logits"}])
    )
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    direct = session.run(["logits"], {"frames": values})[0]

    assert response.status_code == 200
    outputs = _outputs(response)
    assert list(outputs) == ["logits"]
    assert np.allclose(outputs["logits"], direct, rtol=0, atol=1e-6)


async def test_binary_outputs_on_request(client: httpx.AsyncClient) -> None:
    _, pixels = _clip(200)
    body, headers = _binary_body(
        pixels,
        "UINT8",
        id="b1",
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "logits"},
            {"name": "probabilities", "parameters": {"binary_data": False}},
        ],
    )
    response = await client.post(INFER, content=body, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    header = json.loads(response.content[:length])
    assert header["id"] == "b1"
    assert header["outputs"][0] == {
        "name": "logits",
        "datatype": "FP32",
        "shape": [1, 4],
        "parameters": {"binary_data_size": 16},
    }
    assert "data" in header["outputs"][1]
    assert len(response.content) == length + 16
    outputs = _outputs(response)
    exp = np.exp(outputs["logits"] - outputs["logits"].max())
    assert np.allclose(exp / exp.sum(), outputs["probabilities"], rtol=0, atol=1e-6)


async def test_a_batch_is_answered_row_by_row_in_one_inference(
    client: httpx.AsyncClient,
) -> None:
    clips = [_clip(start, step=0)[1] for start in (0, 170, 255)]
    batch = np.concatenate(clips)
    body, headers = _binary_body(
        _unit(batch),
        "FP32",
        outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}],
    )
    response = await client.post(
        "/v2/models/brightness/versions/0.0.1/infer", content=body, headers=headers
    )
    metrics = (await client.get("/metrics")).text

    assert response.status_code == 200
    probabilities = _outputs(response)["probabilities"]
    assert probabilities.shape == (3, 4)
    assert probabilities.argmax(axis=1).tolist() == [0, 2, 3]  # dark, mid, bright
    assert "classifier_batch_size_count 1.0" in metrics
    assert "classifier_batch_size_sum 3.0" in metrics


async def test_gzip_encoded_requests_are_inflated(client: httpx.AsyncClient) -> None:
    _, pixels = _clip(255, step=0)
    response = await client.post(
        INFER,
        content=gzip.compress(_json_body(pixels, "UINT8")),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )

    assert response.status_code == 200
    assert int(_outputs(response)["probabilities"].argmax()) == 3


@pytest.mark.parametrize(
    "path", ["/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"]
)
async def test_the_openapi_example_shows_the_request_and_answers_what_it_lacks(
    client: httpx.AsyncClient, path: str
) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][path]["post"]
    example = operation["requestBody"]["content"]["application/json"]["examples"]
    request = example["clip-structure"]["value"]
    response = await client.post(INFER, json=request)

    assert operation["tags"] == ["open-inference-protocol"]
    assert request["inputs"][0]["name"] == BRIGHTNESS_METADATA["inputs"][0]["name"]
    assert _error(response, 400) == (
        "input 'frames' 'data' holds 8 values; shape [1, 24, 64, 64, 1] needs 98304"
    )


async def test_access_records_name_model_frames_and_verdict(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, one = _clip(255, step=0)
    two = np.concatenate([one, one])
    async with app_client(model_dir, access_log_stdout=True) as c:
        await c.post(INFER, content=_json_body(one, "UINT8"), headers={"X-Request-ID": "oip-1"})
        await c.post(INFER, content=_json_body(two, "UINT8"), headers={"X-Request-ID": "oip-2"})

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    access = {r["request_id"]: r for r in records if r.get("tag") == "classifier.access"}
    fields = ("status", "path", "model", "model_version", "frames", "label")
    assert [access["oip-1"].get(k) for k in fields] == [
        200,
        INFER,
        "brightness",
        "0.0.1",
        24,
        "bright",
    ]
    assert access["oip-1"]["confidence"] > 0.5
    assert [access["oip-2"].get(k) for k in fields] == [
        200,
        INFER,
        "brightness",
        "0.0.1",
        48,
        None,
    ]


# --- errors --------------------------------------------------------------------------------------


async def _still_serves(client: httpx.AsyncClient) -> None:
    _, pixels = _clip(0, step=0)
    body, headers = _binary_body(pixels, "UINT8")
    response = await client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200
    assert int(_outputs(response)["probabilities"].argmax()) == 0


async def test_mis_shaped_tensor_is_400(client: httpx.AsyncClient) -> None:
    _, pixels = _clip(100)
    response = await client.post(INFER, content=_json_body(pixels[:, :23], "UINT8"))

    assert _error(response, 400) == (
        "input 'frames' has shape [1, 23, 64, 64, 1]; the model takes "
        "[N, 24, 64, 64, 1] (NTHWC, 1 <= N <= 64)"
    )
    await _still_serves(client)


async def test_a_batch_over_the_limit_is_400_naming_it(client: httpx.AsyncClient) -> None:
    pixels = np.zeros((65, *CLIP_SHAPE), dtype=np.uint8)
    body, headers = _binary_body(pixels, "UINT8")
    response = await client.post(INFER, content=body, headers=headers)

    assert _error(response, 400) == (
        "input 'frames' has a batch of 65 sequences, over the limit of 64 per request"
    )


async def test_malformed_and_non_json_bodies_are_400(client: httpx.AsyncClient) -> None:
    multipart = await client.post(INFER, files=files("frames", sequence(100, count=2)))
    wrong_input = await client.post(
        INFER, json={"inputs": [{"name": "images", "shape": [1], "datatype": "FP32", "data": [0]}]}
    )
    no_header_length = await client.post(
        INFER,
        content=_binary_body(np.zeros((1, *CLIP_SHAPE), np.uint8), "UINT8")[0],
        headers={"content-type": "application/octet-stream"},
    )

    assert _error(multipart, 400).startswith("the request is not valid JSON: ")
    assert _error(wrong_input, 400) == (
        "unknown input 'images'; this model takes exactly one input, 'frames'"
    )
    assert _error(no_header_length, 400).endswith(
        "(binary tensor data after the JSON object needs the Inference-Header-Content-Length "
        "header giving the JSON object's length)"
    )
    await _still_serves(client)


async def test_unsupported_content_encoding_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(INFER, content=b"\x00", headers={"content-encoding": "br"})

    assert _error(response, 415) == (
        "Content-Encoding 'br' is not supported (use gzip, deflate or none)"
    )


@pytest.fixture
async def small_client(model_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A service that takes bodies of at most 200 000 bytes."""
    async with app_client(model_dir, max_request_bytes=200_000) as c:
        yield c


async def test_a_body_declared_over_the_limit_is_413_unread(
    small_client: httpx.AsyncClient,
) -> None:
    body, headers = _binary_body(np.zeros((1, *CLIP_SHAPE), np.float32), "FP32")
    response = await small_client.post(INFER, content=body, headers=headers)

    assert _error(response, 413) == (
        f"the request body is {len(body)} bytes, above the limit of 200000 bytes "
        "(limit max_request_bytes)"
    )
    await _still_serves(small_client)


async def test_a_streamed_body_over_the_limit_is_413(small_client: httpx.AsyncClient) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b"0" * 10_000

    response = await small_client.post(INFER, content=chunks())

    assert _error(response, 413) == (
        "the request body is larger than 200000 bytes (limit max_request_bytes)"
    )
    assert len(sent) < 30


async def test_a_gzip_bomb_is_413(small_client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b" " * 5_000_000)
    response = await small_client.post(INFER, content=bomb, headers={"content-encoding": "gzip"})

    assert _error(response, 413) == (
        "the request body inflates to more than 200000 bytes (limit max_request_bytes)"
    )


async def test_default_body_limit_fits_42_fp32_sequences_sent_binary(
    client: httpx.AsyncClient,
) -> None:
    fits, headers = _binary_body(np.full((42, *CLIP_SHAPE), 0.5, np.float32), "FP32")
    over, over_headers = _binary_body(np.full((43, *CLIP_SHAPE), 0.5, np.float32), "FP32")
    accepted = await client.post(INFER, content=fits, headers=headers)
    refused = await client.post(INFER, content=over, headers=over_headers)

    assert accepted.status_code == 200
    assert _outputs(accepted)["probabilities"].shape == (42, 4)
    assert _error(refused, 413).startswith(f"the request body is {len(over)} bytes, above")
