"""The pipeline stages without HTTP: upload parsing, decoding, tensor building, the answer."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from classifier.core.errors import (
    BadUploadError,
    ContentTooLargeError,
    NotMultipartError,
    UndecodableFrameError,
)
from classifier.model.manifest import InputSpec
from classifier.pipeline.answer import classify
from classifier.pipeline.decode import (
    DecodeLimits,
    decode_frame,
    decode_frames,
    decode_png_fast,
)
from classifier.pipeline.tensor import build_tensor
from classifier.pipeline.upload import UploadedFrame, UploadLimits, parse_upload
from tests.support.frames import encode, gray_frame

GRAY = InputSpec(
    name="frames",
    layout="NTHWC",
    frames=3,
    height=64,
    width=64,
    channels=1,
    scaling="unit",
    color_mode="L",
    resize_filter="bilinear",
)
LIMITS = DecodeLimits(max_frame_pixels=4096 * 4096)
UPLOAD = UploadLimits(max_request_bytes=10_000_000, max_frame_bytes=1_000_000, max_parts=100)


def _body(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = bytearray()
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 1_000_000])
async def test_parse_upload_keeps_frames_of_the_named_fields_in_order(chunk_size: int) -> None:
    body = _body(
        [
            ("frames", "a.png", b"AAA\r\n--XyZ-not-a-boundary"),
            ("other", None, b"ignored"),
            ("images", "b.png", b""),
            ("frames", "c.png", b"C" * 5000),
        ]
    )
    frames, received = await parse_upload(
        _chunks(body, chunk_size),
        "multipart/form-data; boundary=XyZ",
        fields=("frames", "images"),
        limits=UPLOAD,
    )

    assert received == len(body)
    assert [(f.index, f.filename, f.data) for f in frames] == [
        (0, "a.png", b"AAA\r\n--XyZ-not-a-boundary"),
        (1, "b.png", b""),
        (2, "c.png", b"C" * 5000),
    ]


async def test_parse_upload_refuses_non_multipart() -> None:
    with pytest.raises(NotMultipartError, match="'application/json'"):
        await parse_upload(_chunks(b"{}", 10), "application/json", fields=("f",), limits=UPLOAD)


async def test_parse_upload_counts_parts_while_streaming() -> None:
    body = _body([("x", None, b"1")] * 101)
    with pytest.raises(ContentTooLargeError, match="more than 100 parts"):
        await parse_upload(
            _chunks(body, 64), "multipart/form-data; boundary=XyZ", fields=("f",), limits=UPLOAD
        )


async def test_parse_upload_requires_a_closing_boundary() -> None:
    body = _body([("frames", "a", b"1")])[:-10]
    with pytest.raises(BadUploadError, match="closing boundary"):
        await parse_upload(
            _chunks(body, 64),
            "multipart/form-data; boundary=XyZ",
            fields=("frames",),
            limits=UPLOAD,
        )


def _frame(data: bytes, index: int = 0, name: str = "f.png") -> UploadedFrame:
    return UploadedFrame(index=index, filename=name, data=data)


def _pillow_reference(data: bytes, spec: InputSpec) -> np.ndarray:
    """The plain path the service must match: open, convert, resize, array."""
    image = Image.open(io.BytesIO(data)).convert(spec.color_mode)
    if image.size != (spec.width, spec.height):
        image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    return np.asarray(image)


@pytest.mark.parametrize(
    ("fmt", "mode", "size"),
    [
        ("PNG", "L", (64, 64)),
        ("PNG", "RGB", (128, 96)),
        ("PNG", "RGBA", (64, 64)),
        ("PNG", "I;16", (64, 64)),
        ("PNG", "1", (32, 32)),
        ("PNG", "P", (64, 64)),
        ("JPEG", "L", (64, 64)),
        ("JPEG", "RGB", (200, 150)),
        ("JPEG", "CMYK", (64, 64)),
        ("BMP", "RGB", (64, 64)),
        ("TIFF", "L", (80, 80)),
        ("TIFF", "F", (64, 64)),
        ("WEBP", "RGB", (64, 64)),
        ("GIF", "P", (64, 64)),
    ],
)
@pytest.mark.parametrize("color_mode", ["L", "RGB"])
def test_decode_matches_the_plain_pillow_path(
    fmt: str, mode: str, size: tuple[int, int], color_mode: str
) -> None:
    source = gray_frame(120, size)
    image = source.convert(mode) if mode != "P" else source.convert("RGB").quantize(64)
    data = encode(image, fmt)
    spec = GRAY.model_copy(
        update={"color_mode": color_mode, "channels": 1 if color_mode == "L" else 3}
    )

    pixels = decode_frame(_frame(data), spec, LIMITS)

    expected = _pillow_reference(data, spec)
    assert pixels.dtype == np.uint8
    assert pixels.shape == ((64, 64) if color_mode == "L" else (64, 64, 3))
    np.testing.assert_array_equal(pixels, expected)


def test_gif_uses_its_first_frame() -> None:
    first, second = gray_frame(10), gray_frame(240)
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])

    pixels = decode_frame(_frame(buffer.getvalue()), GRAY, LIMITS)

    assert pixels.mean() < 20


def test_decode_names_the_bad_frame() -> None:
    frames = [_frame(encode(gray_frame(1)), 0, "ok.png"), _frame(b"junk", 1, "bad.png")]
    with pytest.raises(UndecodableFrameError, match=r"frame 1 \(bad.png\)"):
        decode_frames(frames, GRAY, LIMITS)


def test_build_tensor_scales_and_shapes_as_the_manifest_says() -> None:
    pixels = [np.full((64, 64), value, dtype=np.uint8) for value in (0, 51, 255)]

    unit = build_tensor(pixels, GRAY)
    raw = build_tensor(pixels, GRAY.model_copy(update={"scaling": "raw"}))
    first = build_tensor(pixels, GRAY.model_copy(update={"layout": "NTCHW"}))

    assert unit.shape == (1, 3, 64, 64, 1)
    assert unit.dtype == np.float32
    assert unit[0, :, 0, 0, 0].tolist() == [0.0, np.float32(51) / np.float32(255), 1.0]
    np.testing.assert_array_equal(unit, np.stack(pixels)[None, ..., None].astype(np.float32) / 255)
    assert raw[0, :, 0, 0, 0].tolist() == [0.0, 51.0, 255.0]
    assert first.shape == (1, 3, 1, 64, 64)


def test_classify_ranks_labels_and_breaks_ties_by_order() -> None:
    result = classify(np.array([0.1, 0.4, 0.4, 0.1], dtype=np.float32), ["a", "b", "c", "d"], 3)

    assert (result.label, result.class_index) == ("b", 1)
    assert result.confidence == pytest.approx(0.4)
    assert [r.label for r in result.top_k] == ["b", "c", "a"]
    assert result.probabilities == pytest.approx({"a": 0.1, "b": 0.4, "c": 0.4, "d": 0.1})


async def test_parse_upload_ignores_preamble_and_epilogue() -> None:
    body = b"preamble text\r\n" + _body([("frames", "a.png", b"A")]) + b"epilogue"
    frames, _ = await parse_upload(
        _chunks(body, 5), "multipart/form-data; boundary=XyZ", fields=("frames",), limits=UPLOAD
    )

    assert [(f.filename, f.data) for f in frames] == [("a.png", b"A")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary anywhere", "no boundary found"),
        (b"--XyZ\r\n\r\nheaderless\r\n--XyZ--\r\n", "no Content-Disposition"),
        (b"--XyZ\r\nnot a header\r\n\r\nx\r\n--XyZ--\r\n", "bad header line"),
        (b"--XyZ\r\nContent-Disposition: attachment\r\n\r\nx\r\n--XyZ--\r\n", "form-data"),
        (b"--XyZjunk\r\n", "line break after a boundary"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nx', "closing boundary"),
    ],
)
async def test_parse_upload_names_what_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(BadUploadError, match=message):
        await parse_upload(
            _chunks(body, 64), "multipart/form-data; boundary=XyZ", fields=("a",), limits=UPLOAD
        )


async def test_parse_upload_refuses_parts_before_the_body_ends() -> None:
    consumed: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(100_000):
            consumed.append(i)
            yield b'\r\n--XyZ\r\nContent-Disposition: form-data; name="x"\r\n\r\n1'

    with pytest.raises(ContentTooLargeError, match="more than 100 parts"):
        await parse_upload(
            endless(), "multipart/form-data; boundary=XyZ", fields=("f",), limits=UPLOAD
        )
    assert len(consumed) <= 102


async def test_parse_upload_refuses_an_oversized_frame_naming_it() -> None:
    small = UploadLimits(max_request_bytes=10_000, max_frame_bytes=10, max_parts=10)
    body = _body([("frames", "ok.png", b"1" * 10), ("frames", "big.png", b"2" * 11)])
    with pytest.raises(ContentTooLargeError, match=r"frame 1 \(big.png\) is larger than 10 bytes"):
        await parse_upload(
            _chunks(body, 64), "multipart/form-data; boundary=XyZ", fields=("frames",), limits=small
        )


@pytest.mark.parametrize(
    ("mode", "color_mode", "size", "params", "fast"),
    [
        ("L", "L", (64, 64), {}, True),
        ("L", "L", (64, 64), {"transparency": 7}, True),
        ("L", "L", (64, 64), {"compress_level": 0}, True),
        ("L", "L", (64, 64), {"compress_level": 9, "optimize": True}, True),
        ("RGB", "RGB", (64, 64), {}, True),
        ("RGB", "L", (64, 64), {}, False),  # needs Pillow's RGB -> L conversion
        ("L", "RGB", (64, 64), {}, False),
        ("L", "L", (65, 64), {}, False),  # needs a resize
        ("I;16", "L", (64, 64), {}, False),  # 16-bit
        ("P", "L", (64, 64), {}, False),
        ("RGBA", "RGB", (64, 64), {}, False),
    ],
)
def test_png_fast_path_gives_exactly_the_pillow_pixels(
    mode: str, color_mode: str, size: tuple[int, int], params: dict[str, object], fast: bool
) -> None:
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    source = Image.fromarray(noise, "RGB")
    image = source.convert(mode) if mode != "P" else source.quantize(32)
    data = encode(image, "PNG", **params)
    spec = GRAY.model_copy(
        update={"color_mode": color_mode, "channels": 1 if color_mode == "L" else 3}
    )

    taken = decode_png_fast(data, spec)
    pixels = decode_frame(_frame(data), spec, LIMITS)

    assert (taken is not None) == fast
    np.testing.assert_array_equal(pixels, _pillow_reference(data, spec))


def test_png_fast_path_leaves_corrupt_data_to_pillow() -> None:
    data = bytearray(encode(gray_frame(50), "PNG"))
    data[60:80] = b"\x00" * 20  # inside the image data
    assert decode_png_fast(bytes(data), GRAY) is None
    with pytest.raises(UndecodableFrameError, match=r"frame 0 \(f.png\)"):
        decode_frame(_frame(bytes(data)), GRAY, LIMITS)


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        (b'form-data; name="frames"; filename="a.png"', "frames", "a.png"),
        (b'form-data; name="frames"', "frames", "frame-0"),
        (b'form-data; filename="b.png"; name="frames"', "frames", "b.png"),
        (b'form-data; name=frames; filename="c d.png"', "frames", "c d.png"),
        (b'form-data; name="frames"; filename="q\\"uote.png"', "frames", 'q"uote.png'),
        (b'Form-Data;name="frames";filename="e.png"', "frames", "e.png"),
    ],
)
async def test_content_disposition_variants_are_understood(
    disposition: bytes, name: str, filename: str
) -> None:
    body = b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\nDATA\r\n--XyZ--\r\n"
    frames, _ = await parse_upload(
        _chunks(body, 7), "multipart/form-data; boundary=XyZ", fields=(name,), limits=UPLOAD
    )

    assert [(f.filename, f.data) for f in frames] == [(filename, b"DATA")]
