"""Reading image files (PNG, JPEG, BMP, TIFF) as a camera would deliver them: 8 or 16 bit, grey or
colour, with a one-line reason when a file cannot be read.

PNGs are checked before OpenCV sees them: every chunk's CRC, the IDAT zlib stream and its
length, and only the chunks that shape pixels are passed on (IHDR, PLTE, tRNS, IDAT, IEND).
Otherwise libpng prints its own lines on stderr ("libpng error: IDAT: invalid stored block
lengths", "libpng warning: iCCP: known incorrect sRGB profile") beside ours, from C code that
Python cannot silence. Colour profiles and text chunks do not matter to inspection.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _clean_png(data: bytes) -> bytes:
    """The PNG with only pixel-shaping chunks; ValueError saying what is wrong."""
    pos, kept, idat, ihdr = 8, [PNG_SIGNATURE], [], None
    while True:
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG (chunk {kind.decode('latin-1')} cut short)")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise ValueError(f"corrupt PNG (chunk {kind.decode('latin-1')} fails its CRC)")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        if kind in _KEEP:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if ihdr is None or not idat:
        raise ValueError("corrupt PNG (no IHDR or IDAT)")
    width, height, depth, colour, _, _, interlace = ihdr
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ValueError(f"corrupt PNG (pixel data: {e})") from None
    if interlace == 0 and colour in _CHANNELS:
        expected = height * (1 + (width * _CHANNELS[colour] * depth + 7) // 8)
        if len(raw) != expected:
            raise ValueError(f"corrupt PNG (pixel data is {len(raw)} bytes, {width}x{height} needs {expected})")
    return b"".join(kept)


def read_image(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(image as stored: uint8/uint16, HxW or HxWx3 BGR, alpha dropped; None) or (None, reason);
    the reason does not name the file (callers do)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, f"unreadable image ({e.strerror})"
    if data.startswith(PNG_SIGNATURE):
        try:
            data = _clean_png(data)
        except ValueError as e:
            return None, f"unreadable image: {e}"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None, "unreadable image (expected PNG, JPEG, BMP or TIFF)"
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image, None
