"""StreamingParts, the recording upload's multipart parser, against python-multipart's parser
(an independent implementation) on random bodies cut into random chunks, and on the malformed
bodies it must refuse by name."""

from __future__ import annotations

import random

import pytest
from python_multipart.multipart import MultipartParser

from classifier.core.errors import BadUploadError
from classifier.pipeline.upload import MAX_PART_HEADER_BYTES, StreamingParts

BOUNDARY = b"7d0a-Bound"
Part = tuple[str, str | None, bytes]


class Collected:
    """A sink that keeps every part whole, and checks that calls come in a valid order."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.delivered = 0  # content bytes handed on so far
        self._open = False

    def begin(self, name: str, filename: str | None) -> None:
        assert not self._open
        self._open = True
        self.parts.append((name, filename, b""))

    def data(self, piece: bytes) -> None:
        assert self._open
        assert piece
        name, filename, held = self.parts[-1]
        self.parts[-1] = (name, filename, held + piece)
        self.delivered += len(piece)

    def end(self) -> None:
        assert self._open
        self._open = False


def streamed(body: bytes, sizes: list[int]) -> list[Part]:
    sink = Collected()
    parser = StreamingParts(BOUNDARY, sink)
    start = 0
    for size in sizes:
        parser.write(body[start : start + size])
        start += size
    parser.write(body[start:])
    parser.close()
    assert parser.finished
    return sink.parts


def reference(body: bytes) -> list[Part]:
    """The same body through python-multipart's callback parser."""
    parts: list[Part] = []
    header = {"name": b"", "value": b""}
    headers: dict[bytes, bytes] = {}
    content = bytearray()

    def header_end() -> None:
        headers[header["name"].lower()] = header["value"]
        header.update(name=b"", value=b"")

    def part_end() -> None:
        disposition = headers[b"content-disposition"].decode()
        fields = dict(
            item.strip().split("=", 1) for item in disposition.split(";")[1:]
        )  # fmt: skip
        filename = fields.get("filename")
        parts.append((fields["name"].strip('"'), filename and filename.strip('"'), bytes(content)))
        headers.clear()
        content.clear()

    callbacks = {
        "on_header_field": lambda d, s, e: header.update(name=header["name"] + d[s:e]),
        "on_header_value": lambda d, s, e: header.update(value=header["value"] + d[s:e]),
        "on_header_end": header_end,
        "on_part_data": lambda d, s, e: content.extend(d[s:e]),
        "on_part_end": part_end,
    }
    parser = MultipartParser(BOUNDARY, callbacks)  # type: ignore[arg-type]
    parser.write(body)
    parser.finalize()
    return parts


def tricky_content(rng: random.Random) -> bytes:
    """Bytes that look like the start of a delimiter without being one."""
    pieces = [
        b"\r",
        b"\r\n",
        b"--",
        b"\r\n--",
        b"\r\n--" + BOUNDARY[: rng.randrange(1, len(BOUNDARY))],
        b"\r\n--" + BOUNDARY + b"x",
        b"\r\n--" + BOUNDARY + b"-x",
        bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))),
        rng.randbytes(rng.randrange(0, 3000)),
    ]
    return b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))


def random_body(rng: random.Random) -> tuple[bytes, list[Part]]:
    parts: list[Part] = []
    body = b""
    for index in range(rng.randrange(0, 12)):
        name = rng.choice(["frames", "fps", "subject", "video"])
        filename = rng.choice([None, f"frame_{index:03d}.png", f"cam 1/f{index}.png"])
        content = tricky_content(rng)
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"Content-Disposition: {disposition}\r\n"
        if rng.random() < 0.5:
            head += "Content-Type: image/png\r\n"
        body += b"--" + BOUNDARY + b"\r\n" + head.encode() + b"\r\n" + content + b"\r\n"
        parts.append((name, filename, content))
    body += b"--" + BOUNDARY + b"--" + rng.choice([b"", b"\r\n", b"\r\nan epilogue\r\n"])
    return body, parts


@pytest.mark.parametrize("seed", range(40))
def test_random_bodies_in_random_chunks_give_the_parts_python_multipart_finds(seed: int) -> None:
    rng = random.Random(seed)
    body, parts = random_body(rng)
    assert reference(body) == parts  # the generator's own account agrees with the oracle
    top = rng.choice([1, 3, 17, 200, 5000])
    sizes = [rng.randrange(0, top + 1) for _ in range(len(body) // max(1, top // 2) + 1)]
    assert streamed(body, sizes) == parts
    assert streamed(body, []) == parts  # the body as one chunk
    # A preamble (which python-multipart refuses; RFC 2046 says to ignore it) changes nothing.
    preamble = rng.choice([b"\r\n", b"a preamble\r\n", b"--" + BOUNDARY + b"x\r\n"])
    assert streamed(preamble + body, sizes) == parts


def test_transport_padding_after_a_delimiter_is_allowed() -> None:
    body = (
        b"--" + BOUNDARY + b" \t \r\n"
        b'Content-Disposition: form-data; name="fps"\r\n\r\n30\r\n'
        b"--" + BOUNDARY + b"--\r\n"
    )
    assert streamed(body, [1] * len(body)) == [("fps", None, b"30")]


def test_content_is_handed_on_as_it_arrives_not_held() -> None:
    sink = Collected()
    parser = StreamingParts(BOUNDARY, sink)
    parser.write(b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="video"\r\n\r\n')
    for _ in range(10):
        parser.write(b"\0" * 65536)
    # Only the bytes that could still begin a delimiter line wait for the next chunk.
    assert sink.delivered >= 10 * 65536 - len(b"\r\n--" + BOUNDARY)
    assert not parser.finished


def test_the_epilogue_after_the_closing_delimiter_is_ignored() -> None:
    sink = Collected()
    parser = StreamingParts(BOUNDARY, sink)
    parser.write(b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\nA')
    parser.write(b"\r\n--" + BOUNDARY + b"--")
    assert parser.finished
    parser.write(b"\r\n--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="b"\r\n\r\nB')
    parser.close()
    assert sink.parts == [("a", None, b"A")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "ends before its closing boundary"),
        (b"no delimiter at all", "ends before its closing boundary"),
        (b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nA', "before its closing"),
        (b"--B\r\n\r\nheaderless\r\n--B--", "part 1 has no Content-Disposition"),
        (b"--B\r\nnot a header\r\n\r\nx\r\n--B--", "part 1 has a bad header line"),
        (b"--B\r\nContent-Disposition: attachment\r\n\r\nx\r\n--B--", "form-data header"),
        (b"--B\r\nX-Long: " + b"a" * MAX_PART_HEADER_BYTES, "no header end within"),
        (b"--B" + b" " * MAX_PART_HEADER_BYTES, "boundary line does not end"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_fault(body: bytes, message: str) -> None:
    def feed() -> None:
        parser = StreamingParts(b"B", Collected())
        for start in range(0, len(body), 1000):
            parser.write(body[start : start + 1000])
        parser.close()

    with pytest.raises(BadUploadError, match=message):
        feed()
