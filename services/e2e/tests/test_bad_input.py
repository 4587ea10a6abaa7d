"""Every bad input of the brief gets a clear 4xx naming what was wrong, and the service lives on.

Limits are the service's defaults (2 MiB per frame, 16 MiB per body, 256 parts, 4096 x 4096
pixels per frame): the inputs below are well beyond them, so a deployment that raises a limit a
little still refuses them.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
import pytest

from tests.oip import BINARY_HEADER, binary_infer_request, json_infer_request
from tests.prometheus import samples
from tests.raw_http import connection, encode_multipart, read_response, request_head
from tests.request_ledger import RequestLedger, new_request_id
from tests.served_model import ServedModel
from tests.uploads import (
    ClipUploads,
    MultipartFiles,
    multipart,
    noise_bmp,
    png_declaring,
    ppm_frame,
)

UNKNOWN_MODEL = "no-such-model"


async def still_serving(client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, "not ready after the bad request"
    answer = await client.post(model.classify_url, files=clips.multipart("frames", "walk", 0))
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] == "walk", answer.json()["probabilities"]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem (the /v1 error format) with the request's id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def error(response: httpx.Response, status: int) -> str:
    """An ``{"error": ...}`` body, as /predict and the OIP routes answer."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    message: str = body["error"]
    assert message
    return message


def with_frame(clips: ClipUploads, index: int, data: bytes, ext: str) -> MultipartFiles:
    """A walk clip whose frame ``index`` is replaced by ``data``, named ``frame_<index>.<ext>``."""
    files = clips.multipart("frames", "walk", 0)
    files[index] = ("frames", (f"frame_{index:02d}.{ext}", data, "application/octet-stream"))
    return files


# --- frames ------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, +1])
async def test_wrong_number_of_frames_is_422(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, offset: int
) -> None:
    frames = (clips.files("walk", 0) * 2)[: model.frames + offset]
    response = await client.post(model.classify_url, files=multipart("frames", frames))

    body = problem(response, 422)
    assert str(model.frames) in body["detail"]
    assert str(model.frames + offset) in body["detail"]
    await still_serving(client, model, clips)


async def test_undecodable_frame_is_named_by_index_and_filename(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    files = with_frame(clips, 5, b"this is a text file, not an image", "png")
    response = await client.post(model.classify_url, files=files)

    body = problem(response, 422)
    assert "frame 5 (frame_05.png)" in body["detail"]
    await still_serving(client, model, clips)


async def test_truncated_frame_is_named_on_predict_too(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    whole = clips.files("walk", 0, "jpeg_q75")[7]
    files = [("images", part) for _, part in with_frame(clips, 7, whole[: len(whole) // 2], "jpg")]
    response = await client.post("/predict", files=files)

    assert "frame 7 (frame_07.jpg)" in error(response, 422)
    await still_serving(client, model, clips)


async def test_unsupported_image_format_is_415_naming_it(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    response = await client.post(model.classify_url, files=with_frame(clips, 3, ppm_frame(), "ppm"))

    body = problem(response, 415)
    assert "frame 3 (frame_03.ppm)" in body["detail"]
    assert "PPM" in body["detail"]
    await still_serving(client, model, clips)


async def test_oversized_frame_is_413(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    big = noise_bmp(3_000_000)
    response = await client.post(model.classify_url, files=with_frame(clips, 7, big, "bmp"))

    body = problem(response, 413)
    assert "frame 7" in body["detail"]
    await still_serving(client, model, clips)


@pytest.mark.parametrize("side", [5000, 30000])
async def test_decompression_bomb_is_refused_from_its_header(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, side: int
) -> None:
    """A PNG of a few dozen bytes declaring side x side pixels: never decoded, refused."""
    bomb = png_declaring(side, side)
    assert len(bomb) < 200
    response = await client.post(model.classify_url, files=with_frame(clips, 2, bomb, "png"))

    body = problem(response, 413)
    assert "frame 2" in body["detail"]
    await still_serving(client, model, clips)


async def test_thousands_of_tiny_parts_are_413(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    files = [("frames", (f"f{i}.png", b"x", "image/png")) for i in range(5000)]
    response = await client.post(model.classify_url, files=files)

    body = problem(response, 413)
    assert "parts" in body["detail"]
    await still_serving(client, model, clips)


# --- bodies ------------------------------------------------------------------------------------


async def test_non_multipart_body_is_415_on_v1_and_the_seed_400_on_predict(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    on_v1 = await client.post(model.classify_url, json={"frames": ["frame_00.png"]})
    on_predict = await client.post("/predict", json={"images": []})

    assert "application/json" in problem(on_v1, 415)["detail"]
    # The original service found no images in such a body, and said so.
    assert error(on_predict, 400) == f"Please upload exactly {model.frames} images."
    await still_serving(client, model, clips)


async def test_multipart_without_a_boundary_is_400(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    response = await client.post(
        model.classify_url, content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )

    assert "boundary" in problem(response, 400)["detail"]
    await still_serving(client, model, clips)


async def test_multipart_cut_short_is_400(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    upload = encode_multipart(clips.multipart("frames", "walk", 0))
    response = await client.post(
        model.classify_url,
        content=upload.body[: len(upload.body) // 2],
        headers={"Content-Type": upload.content_type},
    )

    problem(response, 400)
    await still_serving(client, model, clips)


async def test_body_declared_over_the_limit_is_refused_before_it_is_sent(
    base_url: str,
    client: httpx.AsyncClient,
    model: ServedModel,
    clips: ClipUploads,
    ledger: RequestLedger,
) -> None:
    """Content-Length says 64 MiB; the answer comes after the first 64 KiB, not the rest."""
    request_id = new_request_id()
    head = request_head(
        "POST",
        base_url,
        model.classify_url,
        {
            "Content-Type": "multipart/form-data; boundary=e2e-boundary",
            "Content-Length": str(64 * 1024 * 1024),
            "X-Request-ID": request_id,
        },
    )
    async with connection(base_url) as (reader, writer):
        writer.write(head + b"--e2e-boundary\r\n" + b"\0" * 65536)
        await writer.drain()
        response = await asyncio.wait_for(read_response(reader), timeout=10)
    ledger.note("POST", model.classify_url, request_id, response.headers.get("x-request-id"), 413)

    assert response.status == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert json.loads(response.body)["request_id"] == request_id
    await still_serving(client, model, clips)


@pytest.mark.parametrize("close", ["fin", "rst"])
async def test_client_disconnecting_mid_upload_leaves_the_service_healthy(
    base_url: str,
    client: httpx.AsyncClient,
    model: ServedModel,
    clips: ClipUploads,
    ledger: RequestLedger,
    close: str,
) -> None:
    """Half a body, then the client is gone (closed, or reset): logged as 499, nothing leaks."""
    upload = encode_multipart(clips.multipart("frames", "walk", 0))
    request_id = new_request_id()
    head = request_head(
        "POST",
        base_url,
        model.classify_url,
        {
            "Content-Type": upload.content_type,
            "Content-Length": str(len(upload.body)),
            "X-Request-ID": request_id,
        },
    )
    async with connection(base_url, reset_on_close=close == "rst") as (_, writer):
        writer.write(head + upload.body[: len(upload.body) // 2])
        await writer.drain()
        # The service has admitted the request and is waiting for the rest of its body.
        assert await _in_flight_becomes(client, 1.0) == [1.0]
    ledger.note("POST", model.classify_url, request_id, None, 499)

    await still_serving(client, model, clips)
    # The abandoned request no longer holds a place among the requests in flight.
    assert await _in_flight_becomes(client, 0.0) == [0.0]


async def _in_flight_becomes(
    client: httpx.AsyncClient,
    value: float,
    timeout: float = 5.0,  # noqa: ASYNC109 - one deadline for the whole wait reads best in tests
) -> list[float]:
    """Poll ``classifier_requests_in_flight`` until it is ``value`` or ``timeout`` passes; the
    samples last seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = (await client.get("/metrics")).text
        in_flight = [v for n, _, v in samples(text) if n == "classifier_requests_in_flight"]
        if in_flight == [value] or asyncio.get_running_loop().time() >= deadline:
            return in_flight
        await asyncio.sleep(0.05)


# --- models and the Open Inference Protocol ------------------------------------------------------


async def test_unknown_model_is_404_on_v1(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    metadata = await client.get(f"/v1/models/{UNKNOWN_MODEL}")
    classify = await client.post(
        f"/v1/models/{UNKNOWN_MODEL}/classify", files=clips.multipart("frames", "walk", 0)
    )

    assert UNKNOWN_MODEL in problem(metadata, 404)["detail"]
    assert UNKNOWN_MODEL in problem(classify, 404)["detail"]
    await still_serving(client, model, clips)


async def test_unknown_model_is_404_on_v2(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    request = json_infer_request(model, clips.pixels("walk", 0))
    metadata = await client.get(f"/v2/models/{UNKNOWN_MODEL}")
    ready = await client.get(f"/v2/models/{UNKNOWN_MODEL}/ready")
    infer = await client.post(f"/v2/models/{UNKNOWN_MODEL}/infer", json=request)

    for response in (metadata, ready, infer):
        error(response, 404)
    assert UNKNOWN_MODEL in error(infer, 404)
    await still_serving(client, model, clips)


def _zeros(model: ServedModel, shape: list[int], datatype: str = "FP32") -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": model.input_name,
                "shape": shape,
                "datatype": datatype,
                "data": [0] * math.prod(shape),
            }
        ]
    }


def malformed_infer_request(
    case: str, model: ServedModel, clips: ClipUploads
) -> tuple[bytes, dict[str, str]]:
    json_type = {"Content-Type": "application/json"}
    shorter = [1, model.frames - 1, *model.shape[2:]]
    bodies: dict[str, Any] = {
        "no inputs": {"inputs": []},
        "inputs not a list": {"inputs": {"name": model.input_name}},
        "unknown input name": {
            "inputs": [{**_zeros(model, model.shape)["inputs"][0], "name": "no-such-input"}]
        },
        "wrong shape": _zeros(model, shorter),
        "data shorter than its shape": {
            "inputs": [{**_zeros(model, [1])["inputs"][0], "shape": model.shape}]
        },
        "unsupported datatype": _zeros(model, model.shape, "BYTES"),
        "data not numbers": {
            "inputs": [{**_zeros(model, model.shape)["inputs"][0], "data": ["a"] * model.size}]
        },
    }
    if case == "not JSON":
        return b'{"inputs": [', json_type
    if case in bodies:
        return json.dumps(bodies[case]).encode("utf-8"), json_type
    body, headers = binary_infer_request(model, [clips.pixels("walk", 0)])
    if case == "binary data shorter than declared":
        return body[: len(body) - 1000], headers
    if case == "header length beyond the body":
        return body, {**headers, BINARY_HEADER: str(len(body) + 10)}
    raise AssertionError(f"unknown case {case!r}")


@pytest.mark.parametrize(
    "case",
    [
        "not JSON",
        "no inputs",
        "inputs not a list",
        "unknown input name",
        "wrong shape",
        "data shorter than its shape",
        "unsupported datatype",
        "data not numbers",
        "binary data shorter than declared",
        "header length beyond the body",
    ],
)
async def test_malformed_inference_request_is_400(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads, case: str
) -> None:
    content, headers = malformed_infer_request(case, model, clips)
    response = await client.post(model.infer_url, content=content, headers=headers)

    error(response, 400)
    await still_serving(client, model, clips)
