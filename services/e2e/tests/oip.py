"""Open Inference Protocol (KServe v2) requests for clips: JSON tensors and binary tensors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from tests.served_model import ServedModel
from tests.uploads import Clip

BINARY_HEADER = "Inference-Header-Content-Length"
WIRE_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}


def input_tensor(
    model: ServedModel, clips: Sequence[Clip], datatype: str = "FP32"
) -> npt.NDArray[Any]:
    """A batch of clips as the model's input: FP32 scaled to [0, 1], or the pixels as UINT8."""
    pixels = np.stack([clip.reshape(model.shape[1:]) for clip in clips])
    if datatype == "UINT8":
        return pixels
    return (pixels / 255.0).astype(np.float32)


def json_infer_request(
    model: ServedModel, clip: Clip, datatype: str = "FP32", request_id: str = "e2e"
) -> dict[str, Any]:
    """One clip as JSON numbers."""
    tensor = input_tensor(model, [clip], datatype)
    return {
        "id": request_id,
        "inputs": [
            {
                "name": model.input_name,
                "shape": list(tensor.shape),
                "datatype": datatype,
                "data": tensor.ravel().tolist(),
            }
        ],
    }


def binary_infer_request(
    model: ServedModel,
    clips: Sequence[Clip],
    datatype: str = "FP32",
    *,
    binary_output: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of the binary tensor extension: the JSON object, then the raw tensor
    (little-endian); ``binary_output`` asks for the probabilities the same way."""
    raw = input_tensor(model, clips, datatype).astype(WIRE_DTYPES[datatype]).tobytes()
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": model.input_name,
                "shape": [len(clips), *model.shape[1:]],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
    }
    if binary_output:
        header["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": True}}]
    head = json.dumps(header).encode("utf-8")
    headers = {BINARY_HEADER: str(len(head)), "Content-Type": "application/octet-stream"}
    return head + raw, headers


def output(body: dict[str, Any], name: str = "probabilities") -> dict[str, Any]:
    matches: list[dict[str, Any]] = [t for t in body["outputs"] if t["name"] == name]
    assert len(matches) == 1, f"no single output named {name!r} in {body['outputs']}"
    return matches[0]


def binary_probabilities(response: httpx.Response) -> npt.NDArray[np.float32]:
    """The probabilities of a response that sent them as binary data after its JSON object."""
    length = int(response.headers[BINARY_HEADER])
    body = json.loads(response.content[:length])
    probabilities = output(body)
    assert probabilities["datatype"] == "FP32"
    assert "data" not in probabilities
    size = probabilities["parameters"]["binary_data_size"]
    raw = response.content[length : length + size]
    assert len(raw) == size == 4 * int(np.prod(probabilities["shape"]))
    return np.frombuffer(raw, dtype="<f4").reshape(probabilities["shape"])
