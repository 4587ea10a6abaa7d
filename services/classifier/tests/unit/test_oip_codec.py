"""The Open Inference Protocol codec without HTTP: metadata, request decoding, response encoding."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest

from classifier.core.errors import (
    ContentTooLargeError,
    InvalidTensorError,
    UnsupportedContentEncodingError,
)
from classifier.model.manifest import InputSpec, Manifest
from classifier.pipeline.oip_codec import (
    MAX_SEQUENCES_PER_REQUEST,
    EncodedResponse,
    InferenceRequest,
    RequestedOutput,
    decode_inference_request,
    decompress_body,
    encode_inference_response,
    model_metadata,
    output_names,
    split_body,
)
from classifier.pipeline.tensor import build_tensor

SPEC = InputSpec(
    name="frames",
    layout="NTHWC",
    frames=3,
    height=4,
    width=5,
    channels=1,
    scaling="unit",
    color_mode="L",
    resize_filter="bilinear",
)
SHAPE = [1, 3, 4, 5, 1]
COUNT = 60
BOTH = ("probabilities", "logits")
EMPTY = memoryview(b"")


def _manifest(kind: str = "logits", **input_changes: Any) -> Manifest:
    return Manifest(
        name="tiny",
        version="2.1",
        sha256="0" * 64,
        labels=("a", "b, c", "d"),
        input=SPEC.model_copy(update=input_changes),
        output={"name": "out", "kind": kind},
    )


def _pixels(batch: int = 1, seed: int = 0) -> np.ndarray[Any, np.dtype[np.uint8]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(batch, *SPEC.shape), dtype=np.uint8)


def _request(**input_fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "frames", "shape": SHAPE, "datatype": "UINT8"}
    item.update(input_fields)
    return {"inputs": [item]}


def _decode(
    document: dict[str, Any] | bytes,
    binary: bytes = b"",
    spec: InputSpec = SPEC,
    outputs: tuple[str, ...] = BOTH,
) -> InferenceRequest:
    header = document if isinstance(document, bytes) else json.dumps(document).encode()
    return decode_inference_request(header, memoryview(binary), spec, outputs)


# --- metadata ------------------------------------------------------------------------------------


def test_model_metadata_of_a_logits_model() -> None:
    assert model_metadata(_manifest()) == {
        "name": "tiny",
        "versions": ["2.1"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "frames", "datatype": "FP32", "shape": [-1, 3, 4, 5, 1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "parameters": {
            "labels": '["a","b, c","d"]',
            "layout": "NTHWC",
            "scaling": "unit",
            "max_batch_size": MAX_SEQUENCES_PER_REQUEST,
        },
    }
    assert json.loads(model_metadata(_manifest())["parameters"]["labels"]) == ["a", "b, c", "d"]


def test_a_probabilities_model_offers_probabilities_only() -> None:
    manifest = _manifest(kind="probabilities", layout="NTCHW")

    assert output_names(manifest) == ("probabilities",)
    metadata = model_metadata(manifest)
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["inputs"][0]["shape"] == [-1, 3, 1, 4, 5]


# --- body framing --------------------------------------------------------------------------------


def test_split_without_header_length_is_all_json() -> None:
    header, binary = split_body(b'{"inputs": []}', None)

    assert header == b'{"inputs": []}'
    assert bytes(binary) == b""


def test_split_at_the_header_length() -> None:
    header, binary = split_body(b'{"a":1}\x00\x01\x02', "7")

    assert header == b'{"a":1}'
    assert bytes(binary) == b"\x00\x01\x02"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("seven", "Inference-Header-Content-Length 'seven' is not a number"),
        ("-1", "Inference-Header-Content-Length -1 does not fit the 10-byte body"),
        ("11", "Inference-Header-Content-Length 11 does not fit the 10-byte body"),
        ("0", "Inference-Header-Content-Length 0 (a request without a JSON object) is not"),
    ],
)
def test_bad_header_length_is_invalid(value: str, message: str) -> None:
    with pytest.raises(InvalidTensorError) as caught:
        split_body(b"0123456789", value)

    assert caught.value.detail.startswith(message)


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        (None, b"payload " * 100),
        ("identity", b"payload " * 100),
        ("gzip", gzip.compress(b"payload " * 100)),
        ("GZip", gzip.compress(b"payload " * 100)),
        ("deflate", zlib.compress(b"payload " * 100)),
    ],
)
def test_decompress_supported_encodings(encoding: str | None, packed: bytes) -> None:
    assert decompress_body(packed, encoding, limit=800) == b"payload " * 100


def test_decompress_refuses_to_inflate_past_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)

    with pytest.raises(ContentTooLargeError) as caught:
        decompress_body(bomb, "gzip", limit=10_000)

    assert caught.value.detail == (
        "the request body inflates to more than 10000 bytes (limit max_request_bytes)"
    )
    assert caught.value.status_code == 413


def test_decompress_unknown_encoding_is_415() -> None:
    with pytest.raises(UnsupportedContentEncodingError) as caught:
        decompress_body(b"x", "br", limit=100)

    assert caught.value.status_code == 415
    assert (
        caught.value.detail == "Content-Encoding 'br' is not supported (use gzip, deflate or none)"
    )


def test_decompress_corrupt_and_truncated_bodies_are_invalid() -> None:
    packed = gzip.compress(b"payload " * 100)

    with pytest.raises(InvalidTensorError, match=r"^the gzip-encoded request body is corrupt"):
        decompress_body(b"not gzip at all", "gzip", limit=10_000)
    with pytest.raises(InvalidTensorError, match=r"^the gzip-encoded request body is truncated$"):
        decompress_body(packed[: len(packed) // 2], "gzip", limit=10_000)


# --- decoding inputs -----------------------------------------------------------------------------


def test_uint8_json_scales_exactly_like_the_frame_pipeline() -> None:
    pixels = _pixels()
    decoded = _decode(_request(data=pixels.ravel().tolist()))

    expected = build_tensor(list(pixels[0, ..., 0]), SPEC)
    assert decoded.batch.dtype == np.float32
    assert decoded.batch.shape == (1, 3, 4, 5, 1)
    assert np.array_equal(decoded.batch, expected)


def test_uint8_with_raw_scaling_is_pixels_as_floats() -> None:
    pixels = _pixels()
    raw = SPEC.model_copy(update={"scaling": "raw"})
    decoded = _decode(_request(data=pixels.ravel().tolist()), spec=raw)

    assert np.array_equal(decoded.batch, pixels.astype(np.float32))


def test_fp32_json_flat_and_nested_and_binary_agree() -> None:
    values = _pixels(batch=2).astype(np.float32) / np.float32(255.0)
    shape = [2, *SHAPE[1:]]
    flat = _decode(_request(datatype="FP32", shape=shape, data=values.ravel().tolist()))
    nested = _decode(_request(datatype="FP32", shape=shape, data=values.tolist()))
    binary = _decode(
        _request(datatype="FP32", shape=shape, parameters={"binary_data_size": values.nbytes}),
        values.astype("<f4").tobytes(),
    )

    for decoded in (flat, nested, binary):
        assert np.array_equal(decoded.batch, values)
        assert decoded.batch.flags.writeable


def test_uint8_binary_matches_uint8_json() -> None:
    pixels = _pixels(batch=3)
    shape = [3, *SHAPE[1:]]
    json_batch = _decode(_request(shape=shape, data=pixels.ravel().tolist())).batch
    binary_batch = _decode(
        _request(shape=shape, parameters={"binary_data_size": pixels.nbytes}), pixels.tobytes()
    ).batch

    assert np.array_equal(json_batch, binary_batch)


def test_ntchw_layout_takes_its_own_shape() -> None:
    spec = SPEC.model_copy(update={"layout": "NTCHW"})
    decoded = _decode(_request(shape=[1, 3, 1, 4, 5], data=[7] * COUNT), spec=spec)

    assert decoded.batch.shape == (1, 3, 1, 4, 5)


def test_the_largest_batch_is_accepted() -> None:
    decoded = _decode(
        _request(
            shape=[MAX_SEQUENCES_PER_REQUEST, *SHAPE[1:]],
            data=[1] * COUNT * MAX_SEQUENCES_PER_REQUEST,
        )
    )

    assert decoded.batch.shape == (MAX_SEQUENCES_PER_REQUEST, 3, 4, 5, 1)


def test_id_and_requested_outputs() -> None:
    document = _request(data=[0] * COUNT)
    document["id"] = "req-7"
    document["parameters"] = {"binary_data_output": True, "sequence_id": 0}
    document["outputs"] = [
        {"name": "logits"},
        {"name": "probabilities", "parameters": {"binary_data": False}},
    ]
    decoded = _decode(document)

    assert decoded.id == "req-7"
    assert decoded.outputs == (
        RequestedOutput("logits", binary=True),
        RequestedOutput("probabilities", binary=False),
    )


@pytest.mark.parametrize(
    ("parameters", "binary"), [(None, False), ({"binary_data_output": True}, True)]
)
def test_no_outputs_means_all_of_them(parameters: dict[str, bool] | None, binary: bool) -> None:
    document = _request(data=[0] * COUNT)
    if parameters is not None:
        document["parameters"] = parameters
    decoded = _decode(document)

    assert decoded.id is None
    assert decoded.outputs == (
        RequestedOutput("probabilities", binary),
        RequestedOutput("logits", binary),
    )


def _with(**changes: Any) -> dict[str, Any]:
    """A valid one-sequence UINT8 request with some fields of its input changed."""
    return _request(**{"data": [0] * COUNT, **changes})


def _top(**changes: Any) -> dict[str, Any]:
    """A valid one-sequence UINT8 request with some top-level fields changed."""
    return {**_with(), **changes}


SHAPE_NEEDED = "[N, 3, 4, 5, 1] (NTHWC, 1 <= N <= 64)"


@pytest.mark.parametrize(
    ("document", "binary", "message"),
    [
        (b"", b"", "the request body is empty; expected a JSON inference request"),
        (b"{not json", b"", "the request is not valid JSON: Expecting property name"),
        (
            b'{"inputs": []}\x00\x00',
            b"",
            "the request is not valid JSON: Extra data: line 1 column 15 (char 14) (binary "
            "tensor data after the JSON object needs the Inference-Header-Content-Length header",
        ),
        (b"[1, 2]", b"", "the inference request must be a JSON object"),
        (
            b'{"inputs": [{"name": "frames", "data": [NaN]}]}',
            b"",
            "NaN is not a JSON number; tensor values must be finite",
        ),
        (_top(id=7), b"", "'id' must be a string"),
        (_top(parameters=[1]), b"", "'parameters' of the request must be a JSON object"),
        (
            _top(parameters={"binary_data_output": "yes"}),
            b"",
            "parameter 'binary_data_output' of the request must be true or false",
        ),
        (
            {"id": "x"},
            b"",
            "the request needs 'inputs': a list holding the model's one input 'frames'",
        ),
        (
            {"inputs": []},
            b"",
            "the request needs 'inputs': a list holding the model's one input 'frames'",
        ),
        (
            {"inputs": [{"shape": SHAPE}]},
            b"",
            "each entry of 'inputs' must be an object with a string 'name'",
        ),
        (
            _with(name="images"),
            b"",
            "unknown input 'images'; this model takes exactly one input, 'frames'",
        ),
        (
            {"inputs": [_with()["inputs"][0]] * 2},
            b"",
            "input 'frames' is given 2 times; send it once",
        ),
        (
            _with(datatype="INT64"),
            b"",
            "input 'frames' has datatype 'INT64'; send FP32 (values as the model takes them) "
            "or UINT8 (pixels 0..255, scaled as the model's manifest says)",
        ),
        (
            _with(shape="1,3,4,5,1"),
            b"",
            f"input 'frames' needs 'shape', a list of integers: {SHAPE_NEEDED}",
        ),
        (
            _with(shape=[1, 3, 4, 5, True]),
            b"",
            f"input 'frames' needs 'shape', a list of integers: {SHAPE_NEEDED}",
        ),
        (
            _with(shape=[3, 4, 5, 1]),
            b"",
            f"input 'frames' has shape [3, 4, 5, 1]; the model takes {SHAPE_NEEDED}",
        ),
        (
            _with(shape=[1, 3, 5, 4, 1]),
            b"",
            f"input 'frames' has shape [1, 3, 5, 4, 1]; the model takes {SHAPE_NEEDED}",
        ),
        (
            _with(shape=[0, 3, 4, 5, 1]),
            b"",
            "input 'frames' has shape [0, 3, 4, 5, 1]: the batch must hold at least 1 sequence",
        ),
        (
            _with(shape=[MAX_SEQUENCES_PER_REQUEST + 1, 3, 4, 5, 1]),
            b"",
            "input 'frames' has a batch of 65 sequences, over the limit of 64 per request",
        ),
        (
            _with(data="0" * COUNT),
            b"",
            "input 'frames' 'data' must be a JSON array (flat, or nested as the shape)",
        ),
        (
            _with(data=[0] * (COUNT - 1)),
            b"",
            "input 'frames' 'data' holds 59 values; shape [1, 3, 4, 5, 1] needs 60",
        ),
        (
            _with(data=np.zeros((1, 3, 5, 4, 1), dtype=int).tolist()),
            b"",
            "input 'frames' nested 'data' has shape [1, 3, 5, 4, 1]; nested data must match "
            "the declared shape [1, 3, 4, 5, 1] exactly (or be flat)",
        ),
        (
            _with(data=[[0] * 30, [0] * 29]),
            b"",
            "input 'frames' 'data' is not a regular array: nested lists differ in length",
        ),
        *[
            (
                _with(data=[bad] * COUNT),
                b"",
                "input 'frames' 'data' must hold only numbers "
                "(no strings, booleans, nulls or out-of-range integers)",
            )
            for bad in ("1", True, None, 2**70)
        ],
        (
            _with(data=[0] * (COUNT - 1) + [256]),
            b"",
            "input 'frames' is UINT8: its values must lie within 0..255",
        ),
        (
            _with(data=[0] * (COUNT - 1) + [-1]),
            b"",
            "input 'frames' is UINT8: its values must lie within 0..255",
        ),
        (
            _with(data=[0.0] * (COUNT - 1) + [0.5]),
            b"",
            "input 'frames' is UINT8: its values must be whole numbers 0..255",
        ),
        (
            _with(datatype="FP32", data=[0.0] * (COUNT - 1) + [1e39]),
            b"",
            "input 'frames' holds NaN or infinite values (or values beyond FP32's range)",
        ),
        (
            _with(parameters={"binary_data_size": COUNT}),
            bytes(COUNT),
            "input 'frames' has both 'data' and a binary_data_size parameter",
        ),
        (
            _request(),
            b"",
            "input 'frames' has no 'data' (nor a binary_data_size parameter)",
        ),
        (
            _with(),
            bytes(4),
            "the request carries 4 bytes of binary data no input declares",
        ),
        (
            _request(parameters={"binary_data_size": "60"}),
            bytes(COUNT),
            "input 'frames' parameter 'binary_data_size' must be a non-negative integer",
        ),
        (
            _request(datatype="FP32", parameters={"binary_data_size": COUNT}),
            bytes(COUNT),
            "input 'frames' declares binary_data_size 60; shape [1, 3, 4, 5, 1] of FP32 "
            "takes 240 bytes",
        ),
        (
            _request(parameters={"binary_data_size": COUNT}),
            bytes(COUNT - 1),
            "input 'frames' declares 60 bytes of binary data; the request carries 59 after "
            "its JSON object (is Inference-Header-Content-Length set?)",
        ),
        (
            _request(parameters={"binary_data_size": COUNT}),
            bytes(COUNT + 3),
            "the request carries 63 bytes of binary data; its inputs declare 60",
        ),
        (
            _request(datatype="FP32", parameters={"binary_data_size": COUNT * 4}),
            np.full(COUNT, np.nan, dtype="<f4").tobytes(),
            "input 'frames' holds NaN or infinite values (or values beyond FP32's range)",
        ),
        (
            _with(parameters={"shared_memory_region": "r0"}),
            b"",
            "input 'frames' names a shared memory region; this server has no shared memory "
            "extension",
        ),
        (
            _top(outputs={"name": "logits"}),
            b"",
            "'outputs' must be a list of {\"name\": ...} objects",
        ),
        (
            _top(outputs=[{"name": "scores"}]),
            b"",
            "unknown output 'scores'; this model's outputs are 'probabilities', 'logits'",
        ),
        (
            _top(outputs=[{"parameters": {}}]),
            b"",
            "each entry of 'outputs' must be an object with a string 'name'",
        ),
        (
            _top(outputs=[{"name": "logits"}, {"name": "logits"}]),
            b"",
            "output 'logits' is requested more than once",
        ),
        (
            _top(outputs=[{"name": "logits", "parameters": {"binary_data": 1}}]),
            b"",
            "parameter 'binary_data' of output 'logits' must be true or false",
        ),
        (
            _top(outputs=[{"name": "probabilities", "parameters": {"classification": 2}}]),
            b"",
            "output 'probabilities' asks for classification, an extension this server does not "
            "offer; request 'probabilities' and rank the labels from the model metadata",
        ),
    ],
)
def test_bad_requests_name_the_problem(
    document: dict[str, Any] | bytes, binary: bytes, message: str
) -> None:
    with pytest.raises(InvalidTensorError) as caught:
        _decode(document, binary)

    assert caught.value.status_code == 400
    assert caught.value.detail.startswith(message), caught.value.detail


def test_a_probabilities_model_has_no_logits_to_request() -> None:
    with pytest.raises(InvalidTensorError) as caught:
        _decode(_top(outputs=[{"name": "logits"}]), outputs=("probabilities",))

    assert caught.value.detail == (
        "unknown output 'logits'; this model's outputs are 'probabilities'"
    )


# --- encoding outputs ----------------------------------------------------------------------------

PROBABILITIES = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
LOGITS = np.array([[-1.5, 0.125], [3.0, 3.0]], dtype=np.float32)


def test_json_response() -> None:
    encoded = encode_inference_response(
        model_name="tiny",
        model_version="2.1",
        request_id="r1",
        outputs=[(RequestedOutput("probabilities", binary=False), PROBABILITIES)],
    )

    assert encoded.header_length is None
    assert json.loads(encoded.body) == {
        "model_name": "tiny",
        "model_version": "2.1",
        "id": "r1",
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [2, 2],
                "data": [0.25, 0.75, 0.5, 0.5],
            }
        ],
    }


def test_binary_outputs_follow_the_json_in_order() -> None:
    encoded = encode_inference_response(
        model_name="tiny",
        model_version="2.1",
        request_id=None,
        outputs=[
            (RequestedOutput("logits", binary=True), LOGITS),
            (RequestedOutput("probabilities", binary=False), PROBABILITIES),
        ],
    )

    assert isinstance(encoded, EncodedResponse)
    assert encoded.header_length is not None
    header = json.loads(encoded.body[: encoded.header_length])
    assert header == {
        "model_name": "tiny",
        "model_version": "2.1",
        "outputs": [
            {
                "name": "logits",
                "datatype": "FP32",
                "shape": [2, 2],
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [2, 2],
                "data": [0.25, 0.75, 0.5, 0.5],
            },
        ],
    }
    tail = encoded.body[encoded.header_length :]
    assert tail == LOGITS.astype("<f4").tobytes()
