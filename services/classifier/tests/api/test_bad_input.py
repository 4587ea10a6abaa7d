"""Every bad input of the BRIEF gets a clear 4xx naming what was wrong, and the service lives on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.app_client import app_client
from tests.support.crafted import png_declaring
from tests.support.frames import encode, files, gray_frame, sequence

URL = "/v1/models/brightness/classify"


async def _still_healthy(client: httpx.AsyncClient) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    ok = await client.post(URL, files=files("frames", sequence(255)))
    assert ok.status_code == 200
    assert ok.json()["label"] == "bright"


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


async def test_undecodable_frame_is_named_by_index_and_filename(
    client: httpx.AsyncClient,
) -> None:
    frames = sequence(100)
    frames[5] = b"this is not an image at all"
    response = await client.post(URL, files=files("frames", frames))

    problem = _problem(response, 422)
    assert problem["title"] == "Undecodable frame"
    assert "frame 5 (frame_05.png)" in str(problem["detail"])
    await _still_healthy(client)


async def test_truncated_frame_is_named(client: httpx.AsyncClient) -> None:
    frames = sequence(100)
    whole = encode(gray_frame(100, (64, 64)), "JPEG")
    frames[7] = whole[: len(whole) // 2]
    response = await client.post(URL, files=files("frames", frames))

    problem = _problem(response, 422)
    assert "frame 7 (frame_07.png)" in str(problem["detail"])
    await _still_healthy(client)


@pytest.mark.parametrize(("fmt", "name"), [("PPM", "PPM"), ("ICO", "ICO"), ("PCX", "PCX")])
async def test_unsupported_format_is_415_naming_the_format(
    client: httpx.AsyncClient, fmt: str, name: str
) -> None:
    frames = sequence(100)
    frames[3] = encode(gray_frame(100), fmt)
    response = await client.post(URL, files=files("frames", frames))

    problem = _problem(response, 415)
    assert "frame 3 (frame_03.png) is " + name in str(problem["detail"])
    assert "PNG, JPEG, BMP, TIFF, WEBP, GIF" in str(problem["detail"])
    await _still_healthy(client)


@pytest.mark.parametrize(
    ("width", "height"),
    [(5000, 5000), (30000, 30000)],  # over our limit; and over Pillow's own bomb guard too
)
async def test_decompression_bomb_is_refused_from_its_header(
    client: httpx.AsyncClient, width: int, height: int
) -> None:
    frames = sequence(100)
    frames[2] = png_declaring(width, height)
    response = await client.post(URL, files=files("frames", frames))

    problem = _problem(response, 413)
    assert "frame 2 (frame_02.png)" in str(problem["detail"])
    assert "pixels" in str(problem["detail"])
    await _still_healthy(client)


async def test_not_multipart_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"frames": []})

    problem = _problem(response, 415)
    assert "application/json" in str(problem["detail"])


async def test_no_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"raw bytes")

    problem = _problem(response, 415)
    assert "multipart/form-data" in str(problem["detail"])


async def test_multipart_without_boundary_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
    )

    problem = _problem(response, 400)
    assert "boundary" in str(problem["detail"])


async def test_truncated_multipart_body_is_400(client: httpx.AsyncClient) -> None:
    body = (
        b'--BOUND\r\nContent-Disposition: form-data; name="frames"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + encode(gray_frame(1))
    )
    response = await client.post(
        URL, content=body, headers={"content-type": "multipart/form-data; boundary=BOUND"}
    )

    problem = _problem(response, 400)
    assert "closing boundary" in str(problem["detail"])
    await _still_healthy(client)


async def test_garbage_multipart_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL,
        content=b"--BOUND\r\n\x00\x01garbage without headers\r\n\r\n--BOUND--\r\n",
        headers={"content-type": "multipart/form-data; boundary=BOUND"},
    )

    problem = _problem(response, 400)
    assert "malformed" in str(problem["detail"]) or "Content-Disposition" in str(problem["detail"])


@pytest.fixture
async def strict_client(model_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A service with small limits, to trip them with small bodies."""
    async with app_client(
        model_dir,
        max_frame_bytes=4096,
        max_request_bytes=200_000,
        max_parts=40,
        max_frame_pixels=128 * 128,
    ) as http:
        yield http


async def test_oversized_frame_is_413_naming_it(strict_client: httpx.AsyncClient) -> None:
    frames = sequence(100)
    frames[4] = encode(gray_frame(100, (100, 100)), "BMP")  # about 11 KB
    response = await strict_client.post(URL, files=files("frames", frames))

    problem = _problem(response, 413)
    assert "frame 4 (frame_04.png)" in str(problem["detail"])
    assert "4096 bytes" in str(problem["detail"])


async def test_frame_over_the_pixel_limit_is_413(strict_client: httpx.AsyncClient) -> None:
    frames = sequence(100)
    frames[1] = encode(Image.new("L", (200, 200), 100), "PNG")  # a small file of 40 000 pixels
    response = await strict_client.post(URL, files=files("frames", frames))

    problem = _problem(response, 413)
    assert "200x200" in str(problem["detail"])


async def test_thousands_of_tiny_parts_are_413(client: httpx.AsyncClient) -> None:
    upload = [("frames", (f"f{i}.png", b"x", "image/png")) for i in range(5000)]
    response = await client.post(URL, files=upload)

    problem = _problem(response, 413)
    assert "more than 256 parts (limit max_parts)" in str(problem["detail"])
    await _still_healthy(client)


async def test_declared_content_length_over_the_limit_is_refused_unread(
    strict_client: httpx.AsyncClient,
) -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b"x" * 10_000

    response = await strict_client.post(
        URL,
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=B",
            "content-length": str(1_000_000),
        },
    )

    problem = _problem(response, 413)
    assert "1000000 bytes" in str(problem["detail"])
    assert len(sent) <= 1  # refused from the header, the body was not read


async def test_streamed_body_over_the_limit_is_refused_before_it_ends(
    strict_client: httpx.AsyncClient,
) -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        # One huge part in a field the route ignores, so only the whole-body limit can trip.
        yield b'--B\r\nContent-Disposition: form-data; name="padding"\r\n\r\n'
        for _ in range(100):  # 1 MB in all, the limit is 200 KB
            sent.append(1)
            yield b"y" * 10_000

    response = await strict_client.post(
        URL, content=body(), headers={"content-type": "multipart/form-data; boundary=B"}
    )

    problem = _problem(response, 413)
    assert "max_request_bytes" in str(problem["detail"])
    assert len(sent) < 30


async def test_bad_input_is_logged_with_its_request_id(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_client(model_dir, access_log_stdout=True) as http:
        frames = sequence(100)
        frames[0] = b"nope"
        response = await http.post(
            URL, files=files("frames", frames), headers={"X-Request-ID": "bad-frame-1"}
        )
    assert response.status_code == 422

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    access = [r for r in records if r.get("tag") == "classifier.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "bad-frame-1"
    assert access[0]["status"] == 422
    assert access[0]["error"] == "UndecodableFrameError"
    assert access[0]["path"] == URL
