"""Open Inference Protocol (KServe v2) tensors, without HTTP: an inference request's JSON object
and binary tensor data become one float32 batch shaped as the manifest says, and back for outputs.

The binary tensor data extension puts raw little-endian tensors after the JSON object; the JSON
object's length travels separately (the ``Inference-Header-Content-Length`` header), and each
binary tensor says its byte size in ``parameters.binary_data_size``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from classifier.core.arrays import FloatArray
from classifier.core.errors import (
    ContentTooLargeError,
    InvalidTensorError,
    UnsupportedContentEncodingError,
)
from classifier.model.manifest import InputSpec, Manifest

#: Most sequences one inference request may carry (the first axis of the input's shape). Not
#: ``Settings.max_batch``, the most sequences the engine runs at once, from however many requests.
MAX_SEQUENCES_PER_REQUEST = 64
SERVER_NAME = "image-sequence-classifier"
PLATFORM = "onnx_onnxv1"
BINARY_TENSOR_DATA = "binary_tensor_data"
EXTENSIONS = (BINARY_TENSOR_DATA,)
#: The header giving the JSON object's length when binary tensor data follows it.
HEADER_LENGTH = "Inference-Header-Content-Length"
PROBABILITIES = "probabilities"
LOGITS = "logits"
#: Wire datatypes accepted for the model's input: FP32 as the model takes it, UINT8 as pixels.
INPUT_DATATYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A decoded inference request: the batch as the model takes it and what to send back."""

    id: str | None
    batch: FloatArray
    outputs: tuple[RequestedOutput, ...]


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    body: bytes
    #: Length of the JSON object at the start of ``body``; None when the body is JSON alone.
    header_length: int | None


# --- metadata ------------------------------------------------------------------------------------


def output_names(manifest: Manifest) -> tuple[str, ...]:
    """Outputs the protocol offers: probabilities always, the raw logits when the model has them."""
    return (PROBABILITIES, LOGITS) if manifest.output.kind == "logits" else (PROBABILITIES,)


def model_metadata(manifest: Manifest) -> dict[str, Any]:
    """The protocol's model metadata; ``parameters`` adds the labels in output order (a JSON array
    in a string, as parameter values are scalars) and how inputs are laid out and scaled."""
    spec = manifest.input
    classes = len(manifest.labels)
    return {
        "name": manifest.name,
        "versions": [manifest.version],
        "platform": PLATFORM,
        "inputs": [{"name": spec.name, "datatype": "FP32", "shape": [-1, *spec.shape]}],
        "outputs": [
            {"name": name, "datatype": "FP32", "shape": [-1, classes]}
            for name in output_names(manifest)
        ],
        "parameters": {
            "labels": json.dumps(list(manifest.labels), separators=(",", ":")),
            "layout": spec.layout,
            "scaling": spec.scaling,
            "max_batch_size": MAX_SEQUENCES_PER_REQUEST,
        },
    }


# --- request body --------------------------------------------------------------------------------


def decompress_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a ``Content-Encoding`` of gzip or deflate, never inflating past ``limit`` bytes."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body
    if name == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif name == "deflate":
        inflater = zlib.decompressobj(zlib.MAX_WBITS)
    else:
        raise UnsupportedContentEncodingError(
            f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)"
        )
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidTensorError(f"the {name}-encoded request body is corrupt: {exc}") from None
    if len(inflated) > limit:
        raise ContentTooLargeError(
            f"the request body inflates to more than {limit} bytes (limit max_request_bytes)"
        )
    if not inflater.eof:
        raise InvalidTensorError(f"the {name}-encoded request body is truncated")
    return inflated


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON object and the binary tensor data after it (empty when there is none)."""
    view = memoryview(body)
    if header_length is None:
        return body, view[len(body) :]
    try:
        size = int(header_length)
    except ValueError:
        raise InvalidTensorError(
            f"Inference-Header-Content-Length {header_length!r} is not a number"
        ) from None
    if size == 0:
        raise InvalidTensorError(
            "Inference-Header-Content-Length 0 (a request without a JSON object) is not "
            "supported; send the JSON inference request before the binary data"
        )
    if not 0 < size <= len(body):
        raise InvalidTensorError(
            f"Inference-Header-Content-Length {size} does not fit the {len(body)}-byte body"
        )
    return bytes(view[:size]), view[size:]


def _fail(detail: str) -> NoReturn:
    raise InvalidTensorError(detail)


def _reject_constant(token: str) -> NoReturn:
    _fail(f"{token} is not a JSON number; tensor values must be finite")


def _load_header(header: bytes) -> dict[str, Any]:
    if not header.strip():
        _fail("the request body is empty; expected a JSON inference request")
    try:
        document = json.loads(header, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data":
            hint = (
                " (binary tensor data after the JSON object needs the "
                "Inference-Header-Content-Length header giving the JSON object's length)"
            )
        _fail(f"the request is not valid JSON: {exc}{hint}")
    except (UnicodeDecodeError, RecursionError):
        _fail("the request is not valid JSON: not UTF-8 text, or nested too deeply")
    if not isinstance(document, dict):
        _fail("the inference request must be a JSON object")
    return document


def _parameters(value: object, owner: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(f"'parameters' of {owner} must be a JSON object")
    return value


def _flag(parameters: dict[str, Any], key: str, owner: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        _fail(f"parameter {key!r} of {owner} must be true or false")
    return value


def _refuse_shared_memory(parameters: dict[str, Any], owner: str) -> None:
    if "shared_memory_region" in parameters:
        _fail(f"{owner} names a shared memory region; this server has no shared memory extension")


def _shape(value: object, name: str, spec: InputSpec) -> tuple[int, ...]:
    dims = ", ".join(str(d) for d in spec.shape)
    expected = f"[N, {dims}] ({spec.layout}, 1 <= N <= {MAX_SEQUENCES_PER_REQUEST})"
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        _fail(f"input {name!r} needs 'shape', a list of integers: {expected}")
    shape = tuple(value)
    if len(shape) != 1 + len(spec.shape) or shape[1:] != spec.shape:
        _fail(f"input {name!r} has shape {list(shape)}; the model takes {expected}")
    if shape[0] < 1:
        _fail(f"input {name!r} has shape {list(shape)}: the batch must hold at least 1 sequence")
    if shape[0] > MAX_SEQUENCES_PER_REQUEST:
        _fail(
            f"input {name!r} has a batch of {shape[0]} sequences, over the limit of "
            f"{MAX_SEQUENCES_PER_REQUEST} per request"
        )
    return shape


def _json_values(data: object, name: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    if not isinstance(data, list):
        _fail(f"input {name!r} 'data' must be a JSON array (flat, or nested as the shape)")
    try:
        values = np.array(data)
    except (ValueError, RecursionError):
        _fail(f"input {name!r} 'data' is not a regular array: nested lists differ in length")
    if values.dtype.kind not in "iuf":
        _fail(
            f"input {name!r} 'data' must hold only numbers "
            "(no strings, booleans, nulls or out-of-range integers)"
        )
    count = math.prod(shape)
    if values.ndim == 1:
        if values.size != count:
            _fail(
                f"input {name!r} 'data' holds {values.size} values; "
                f"shape {list(shape)} needs {count}"
            )
        return values.reshape(shape)
    if values.shape != shape:
        _fail(
            f"input {name!r} nested 'data' has shape {list(values.shape)}; nested data must "
            f"match the declared shape {list(shape)} exactly (or be flat)"
        )
    return values


def _binary_values(
    binary: memoryview, size: object, name: str, datatype: str, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        _fail(f"input {name!r} parameter 'binary_data_size' must be a non-negative integer")
    dtype = INPUT_DATATYPES[datatype]
    count = math.prod(shape)
    if size != count * dtype.itemsize:
        _fail(
            f"input {name!r} declares binary_data_size {size}; shape {list(shape)} of "
            f"{datatype} takes {count * dtype.itemsize} bytes"
        )
    if size > len(binary):
        _fail(
            f"input {name!r} declares {size} bytes of binary data; the request carries "
            f"{len(binary)} after its JSON object (is Inference-Header-Content-Length set?)"
        )
    return np.frombuffer(binary, dtype=dtype, count=count).reshape(shape)


def _as_model_input(
    values: npt.NDArray[Any], name: str, datatype: str, spec: InputSpec
) -> FloatArray:
    """Wire values to what the model takes: UINT8 pixels scaled as the manifest says, exactly as
    ``pipeline.tensor.build_tensor`` scales decoded frames; FP32 as sent."""
    if datatype == "UINT8":
        if values.dtype.kind == "f" and not np.array_equal(values, np.floor(values)):
            _fail(f"input {name!r} is UINT8: its values must be whole numbers 0..255")
        if values.dtype != np.uint8 and (values.min() < 0 or values.max() > 255):
            _fail(f"input {name!r} is UINT8: its values must lie within 0..255")
        tensor: FloatArray = values.astype(np.float32)
        if spec.scaling == "unit":
            tensor /= np.float32(255.0)
        return tensor
    with np.errstate(over="ignore"):  # an overflow to inf is refused just below
        tensor = values.astype(np.float32)
    if not np.isfinite(tensor).all():
        _fail(f"input {name!r} holds NaN or infinite values (or values beyond FP32's range)")
    return tensor


def _decode_input(item: dict[str, Any], spec: InputSpec, binary: memoryview) -> FloatArray:
    name = spec.name
    datatype = item.get("datatype")
    if datatype not in INPUT_DATATYPES:
        _fail(
            f"input {name!r} has datatype {datatype!r}; send FP32 (values as the model takes "
            "them) or UINT8 (pixels 0..255, scaled as the model's manifest says)"
        )
    shape = _shape(item.get("shape"), name, spec)
    parameters = _parameters(item.get("parameters"), f"input {name!r}")
    _refuse_shared_memory(parameters, f"input {name!r}")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in item:
            _fail(f"input {name!r} has both 'data' and a binary_data_size parameter")
        values = _binary_values(binary, size, name, datatype, shape)
        if len(binary) != size:
            _fail(
                f"the request carries {len(binary)} bytes of binary data; its inputs declare {size}"
            )
    else:
        if "data" not in item:
            _fail(f"input {name!r} has no 'data' (nor a binary_data_size parameter)")
        if len(binary):
            _fail(f"the request carries {len(binary)} bytes of binary data no input declares")
        values = _json_values(item["data"], name, shape)
    return _as_model_input(values, name, datatype, spec)


def _requested_outputs(
    value: object, available: Sequence[str], binary_default: bool
) -> tuple[RequestedOutput, ...]:
    if value is None or value == []:
        return tuple(RequestedOutput(name, binary_default) for name in available)
    if not isinstance(value, list):
        _fail("'outputs' must be a list of {\"name\": ...} objects")
    offered = ", ".join(repr(name) for name in available)
    requested: list[RequestedOutput] = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            _fail("each entry of 'outputs' must be an object with a string 'name'")
        if name not in available:
            _fail(f"unknown output {name!r}; this model's outputs are {offered}")
        if any(seen.name == name for seen in requested):
            _fail(f"output {name!r} is requested more than once")
        owner = f"output {name!r}"
        parameters = _parameters(item.get("parameters"), owner)
        _refuse_shared_memory(parameters, owner)
        if parameters.get("classification"):
            _fail(
                f"{owner} asks for classification, an extension this server does not offer; "
                f"request {PROBABILITIES!r} and rank the labels from the model metadata"
            )
        requested.append(
            RequestedOutput(name, _flag(parameters, "binary_data", owner, binary_default))
        )
    return tuple(requested)


def decode_inference_request(
    header: bytes, binary: memoryview, spec: InputSpec, available_outputs: Sequence[str]
) -> InferenceRequest:
    """Check and decode an inference request for a model with input ``spec``.

    Raises InvalidTensorError, naming what is wrong, for anything but one input of the model's
    name, an FP32 or UINT8 datatype, a shape ``[N, *spec.shape]`` with
    ``1 <= N <= MAX_SEQUENCES_PER_REQUEST``, and data (JSON, flat or nested, or binary) of exactly
    that many finite values.
    """
    request = _load_header(header)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        _fail("'id' must be a string")
    parameters = _parameters(request.get("parameters"), "the request")
    binary_default = _flag(parameters, "binary_data_output", "the request", False)

    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        _fail(f"the request needs 'inputs': a list holding the model's one input {spec.name!r}")
    for item in inputs:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            _fail("each entry of 'inputs' must be an object with a string 'name'")
        if name != spec.name:
            _fail(f"unknown input {name!r}; this model takes exactly one input, {spec.name!r}")
    if len(inputs) > 1:
        _fail(f"input {spec.name!r} is given {len(inputs)} times; send it once")
    return InferenceRequest(
        id=request_id,
        batch=_decode_input(inputs[0], spec, binary),
        outputs=_requested_outputs(request.get("outputs"), available_outputs, binary_default),
    )


# --- response body -------------------------------------------------------------------------------


def encode_inference_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[RequestedOutput, FloatArray]],
) -> EncodedResponse:
    """The inference response: JSON alone, or JSON then the outputs asked for as binary data."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for requested, values in outputs:
        entry: dict[str, Any] = {
            "name": requested.name,
            "datatype": "FP32",
            "shape": list(values.shape),
        }
        if requested.binary:
            raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = values.ravel().tolist()
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = entries
    header = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return EncodedResponse(header, None)
    return EncodedResponse(header + b"".join(blobs), len(header))
