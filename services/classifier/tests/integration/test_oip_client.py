"""A standard Open Inference Protocol client (Triton's ``tritonclient.http``) against a real uvicorn
process: metadata, health, JSON and binary inference, compression and errors, unchanged."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.http as oip
from PIL import Image
from tritonclient.utils import InferenceServerException

from classifier import __version__
from tests.support.frames import encode, files, gray_frame
from tests.support.server import ServerProcess, running_classifier
from tests.support.tiny_models import write_model_dir

pytestmark = pytest.mark.integration

MODEL = "brightness"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model_dir = write_model_dir(Path(tmp_path_factory.mktemp("oip")) / MODEL)
    with running_classifier(model_dir) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[oip.InferenceServerClient]:
    triton = oip.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30.0)
    try:
        yield triton
    finally:
        triton.close()


def _clip(start: int, step: int) -> tuple[list[bytes], npt.NDArray[np.uint8]]:
    pngs = [encode(gray_frame(min(start + step * i, 255))) for i in range(24)]
    frames = [np.asarray(Image.open(io.BytesIO(png))) for png in pngs]
    return pngs, np.stack(frames)[np.newaxis, ..., np.newaxis]


def _v1_probabilities(server: ServerProcess, pngs: list[bytes]) -> npt.NDArray[np.float32]:
    response = httpx.post(
        f"{server.url}/v1/models/{MODEL}/classify", files=files("frames", pngs), timeout=30
    )
    assert response.status_code == 200
    return np.array(list(response.json()["probabilities"].values()), dtype=np.float32)


def _frames_input(values: npt.NDArray[Any], datatype: str, binary: bool) -> oip.InferInput:
    tensor = oip.InferInput("frames", list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def test_health_and_metadata(client: oip.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version="0.0.1")
    assert not client.is_model_ready("nope")
    assert client.get_server_metadata() == {
        "name": "image-sequence-classifier",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }
    metadata = client.get_model_metadata(MODEL, model_version="0.0.1")
    assert metadata["platform"] == "onnx_onnxv1"
    assert metadata["inputs"] == [
        {"name": "frames", "datatype": "FP32", "shape": [-1, 24, 64, 64, 1]}
    ]
    assert [output["name"] for output in metadata["outputs"]] == ["probabilities", "logits"]


def test_json_tensors_answer_as_v1(
    server: ServerProcess, client: oip.InferenceServerClient
) -> None:
    pngs, pixels = _clip(60, step=5)
    expected = _v1_probabilities(server, pngs)

    result = client.infer(
        MODEL,
        [_frames_input(pixels, "UINT8", binary=False)],
        outputs=[oip.InferRequestedOutput("probabilities", binary_data=False)],
        request_id="json-1",
    )

    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        MODEL,
        "0.0.1",
        "json-1",
    )
    assert [output["name"] for output in response["outputs"]] == ["probabilities"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (1, 4)
    assert np.allclose(probabilities[0], expected, rtol=0, atol=1e-6)


def test_binary_tensors_answer_as_v1(
    server: ServerProcess, client: oip.InferenceServerClient
) -> None:
    pngs, pixels = _clip(120, step=4)
    expected = _v1_probabilities(server, pngs)
    unit = pixels.astype(np.float32) / np.float32(255.0)

    # No outputs named: the client asks for every output as binary data.
    result = client.infer(MODEL, [_frames_input(unit, "FP32", binary=True)], request_id="bin-1")

    outputs = {output["name"]: output for output in result.get_response()["outputs"]}
    assert outputs["probabilities"]["parameters"] == {"binary_data_size": 16}
    assert outputs["logits"]["parameters"] == {"binary_data_size": 16}
    probabilities = result.as_numpy("probabilities")
    logits = result.as_numpy("logits")
    assert np.allclose(probabilities[0], expected, rtol=0, atol=1e-6)
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose(softmax, probabilities, rtol=0, atol=1e-6)


def test_a_compressed_batch(client: oip.InferenceServerClient) -> None:
    batch = np.concatenate([_clip(value, step=0)[1] for value in (0, 90, 170, 255)])

    result = client.infer(
        MODEL,
        [_frames_input(batch, "UINT8", binary=True)],
        outputs=[oip.InferRequestedOutput("probabilities", binary_data=True)],
        model_version="0.0.1",
        request_compression_algorithm="gzip",
    )

    assert result.as_numpy("probabilities").argmax(axis=1).tolist() == [0, 1, 2, 3]


def test_errors_reach_the_client_as_the_protocol_says(
    client: oip.InferenceServerClient,
) -> None:
    _, pixels = _clip(100, step=0)

    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [_frames_input(pixels, "UINT8", binary=True)])
    with pytest.raises(InferenceServerException) as mis_shaped:
        client.infer(MODEL, [_frames_input(pixels[:, :12], "UINT8", binary=True)])

    assert unknown.value.status() == "404"
    assert unknown.value.message() == f"no model named 'nope' is served (served: {MODEL})"
    assert mis_shaped.value.status() == "400"
    assert mis_shaped.value.message() == (
        "input 'frames' has shape [1, 12, 64, 64, 1]; the model takes "
        "[N, 24, 64, 64, 1] (NTHWC, 1 <= N <= 64)"
    )
    assert client.is_server_ready()
