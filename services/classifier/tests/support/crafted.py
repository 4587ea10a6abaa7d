"""Hostile inputs built byte by byte: images whose headers lie about their size."""

from __future__ import annotations

import struct
import zlib

from tests.support.frames import encode, gray_frame


def png_declaring(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR claims ``width`` x ``height`` pixels (valid CRC)."""
    data = bytearray(encode(gray_frame(100, (8, 8))))
    # Signature (8) + length (4) + b"IHDR" (4), then width and height, then 5 more IHDR bytes.
    ihdr_start = 8 + 4
    struct.pack_into(">II", data, ihdr_start + 4, width, height)
    chunk = bytes(data[ihdr_start : ihdr_start + 4 + 13])
    struct.pack_into(">I", data, ihdr_start + 4 + 13, zlib.crc32(chunk))
    return bytes(data)
