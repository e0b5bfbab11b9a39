"""GenICam pixel formats (PFNC names, and the GigE Vision legacy ones cameras still send) into
the station's frames: (H, W) grey or (H, W, 3) BGR, uint8, or uint16 holding `bits` significant
bits. The conversion is chosen once, when the camera opens (`converter`); a format without one
is refused there, naming the formats the toolkit converts.

Packed layouts (PFNC, LSB first): Mono10p/BayerXX10p put 4 pixels in 5 bytes, Mono12p/BayerXX12p
2 pixels in 3 bytes; Mono10Packed, Mono12Packed and BayerXX12Packed (GigE Vision) put 2 pixels
in 3 bytes with the high 8 bits of each in bytes 0 and 2 and both low parts in byte 1. Bayer mosaics are
demosaiced with OpenCV's bilinear method (its Bayer names are offset by one pixel from GenICam's:
GenICam RG = OpenCV BG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


@dataclass(frozen=True)
class Converter:
    name: str
    bits: int                                             # significant bits per channel of the output
    convert: Callable[[np.ndarray, int, int], np.ndarray]  # (payload bytes/words, width, height) -> owned image

    def __call__(self, data: np.ndarray, width: int, height: int) -> np.ndarray:
        return self.convert(np.ascontiguousarray(data).view(np.uint8).ravel(), width, height)


def _mono8(b, w, h):
    return b[:w * h].reshape(h, w).copy()


def _mono16(b, w, h):
    return b[:2 * w * h].view("<u2").reshape(h, w).copy()


def unpack10p(b: np.ndarray, count: int) -> np.ndarray:
    """PFNC 10p: 4 pixels in 5 bytes, LSB first."""
    g = b[:count * 5 // 4].reshape(-1, 5).astype(np.uint16)
    out = np.empty((g.shape[0], 4), np.uint16)
    out[:, 0] = g[:, 0] | ((g[:, 1] & 0x03) << 8)
    out[:, 1] = (g[:, 1] >> 2) | ((g[:, 2] & 0x0F) << 6)
    out[:, 2] = (g[:, 2] >> 4) | ((g[:, 3] & 0x3F) << 4)
    out[:, 3] = (g[:, 3] >> 6) | (g[:, 4] << 2)
    return out.ravel()


def unpack12p(b: np.ndarray, count: int) -> np.ndarray:
    """PFNC 12p: 2 pixels in 3 bytes, LSB first."""
    g = b[:count * 3 // 2].reshape(-1, 3).astype(np.uint16)
    out = np.empty((g.shape[0], 2), np.uint16)
    out[:, 0] = g[:, 0] | ((g[:, 1] & 0x0F) << 8)
    out[:, 1] = (g[:, 1] >> 4) | (g[:, 2] << 4)
    return out.ravel()


def unpack12packed(b: np.ndarray, count: int) -> np.ndarray:
    """GigE Vision Mono12Packed: byte 0 = p0 bits 11..4, byte 1 = p1 bits 3..0 << 4 | p0 bits 3..0,
    byte 2 = p1 bits 11..4."""
    g = b[:count * 3 // 2].reshape(-1, 3).astype(np.uint16)
    out = np.empty((g.shape[0], 2), np.uint16)
    out[:, 0] = (g[:, 0] << 4) | (g[:, 1] & 0x0F)
    out[:, 1] = (g[:, 2] << 4) | (g[:, 1] >> 4)
    return out.ravel()


def unpack10packed(b: np.ndarray, count: int) -> np.ndarray:
    """GigE Vision Mono10Packed: byte 0 = p0 bits 9..2, byte 1 = p1 bits 1..0 << 4 | p0 bits 1..0,
    byte 2 = p1 bits 9..2."""
    g = b[:count * 3 // 2].reshape(-1, 3).astype(np.uint16)
    out = np.empty((g.shape[0], 2), np.uint16)
    out[:, 0] = (g[:, 0] << 2) | (g[:, 1] & 0x03)
    out[:, 1] = (g[:, 2] << 2) | ((g[:, 1] >> 4) & 0x03)
    return out.ravel()


def _packed(unpack):
    return lambda b, w, h: unpack(b, w * h).reshape(h, w)


# GenICam Bayer name -> OpenCV conversion (OpenCV names the pattern from the second pixel)
_BAYER_CV = {"RG": cv2.COLOR_BayerBG2BGR, "GB": cv2.COLOR_BayerGR2BGR,
             "GR": cv2.COLOR_BayerGB2BGR, "BG": cv2.COLOR_BayerRG2BGR}


def _bayer(pattern, raw):
    code = _BAYER_CV[pattern]
    return lambda b, w, h: cv2.cvtColor(raw(b, w, h), code)


def _colour(order, channels):
    def convert(b, w, h):
        img = b[:w * h * channels].reshape(h, w, channels)
        if order == "RGB":
            return cv2.cvtColor(img, cv2.COLOR_RGBA2BGR if channels == 4 else cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if channels == 4 else img.copy()
    return convert


def _yuv422(y_first: bool):
    """Full-range BT.601 (JPEG) 4:2:2, as PFNC defines YUV422_8 / YCbCr422_8 and GigE Vision
    YUV422Packed; OpenCV's YUYV decoders assume video range (16-235), so the chroma pairs are
    spread to every pixel and OpenCV's full-range YCrCb conversion does the rest."""
    def convert(b, w, h):
        q = b[:w * h * 2].reshape(h, w // 2, 4)
        y0, u, y1, v = (q[..., i] for i in ((0, 1, 2, 3) if y_first else (1, 0, 3, 2)))
        ycrcb = np.empty((h, w, 3), np.uint8)
        ycrcb[:, 0::2, 0], ycrcb[:, 1::2, 0] = y0, y1
        ycrcb[:, 0::2, 1] = ycrcb[:, 1::2, 1] = v
        ycrcb[:, 0::2, 2] = ycrcb[:, 1::2, 2] = u
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
    return convert


def _table() -> dict[str, Converter]:
    t = {"Mono8": Converter("Mono8", 8, _mono8)}
    for bits in (10, 12, 14, 16):
        t[f"Mono{bits}"] = Converter(f"Mono{bits}", bits, _mono16)
    t["Mono10p"] = Converter("Mono10p", 10, _packed(unpack10p))
    t["Mono10Packed"] = Converter("Mono10Packed", 10, _packed(unpack10packed))
    t["Mono12p"] = Converter("Mono12p", 12, _packed(unpack12p))
    t["Mono12Packed"] = Converter("Mono12Packed", 12, _packed(unpack12packed))
    for order in ("RGB", "BGR"):
        t[f"{order}8"] = Converter(f"{order}8", 8, _colour(order, 3))
        t[f"{order}a8"] = Converter(f"{order}a8", 8, _colour(order, 4))
    for name in ("YCbCr422_8", "YUV422_8"):  # Y0 U Y1 V
        t[name] = Converter(name, 8, _yuv422(y_first=True))
    for name in ("YUV422_8_UYVY", "YUV422Packed", "YCbCr422_8_CbYCrY"):  # U Y0 V Y1
        t[name] = Converter(name, 8, _yuv422(y_first=False))
    for p in _BAYER_CV:
        t[f"Bayer{p}8"] = Converter(f"Bayer{p}8", 8, _bayer(p, _mono8))
        for bits in (10, 12):
            t[f"Bayer{p}{bits}"] = Converter(f"Bayer{p}{bits}", bits, _bayer(p, _mono16))
        t[f"Bayer{p}10p"] = Converter(f"Bayer{p}10p", 10, _bayer(p, _packed(unpack10p)))
        t[f"Bayer{p}12p"] = Converter(f"Bayer{p}12p", 12, _bayer(p, _packed(unpack12p)))
        t[f"Bayer{p}12Packed"] = Converter(f"Bayer{p}12Packed", 12, _bayer(p, _packed(unpack12packed)))
    return t


CONVERTERS = _table()


def converter(pixel_format: str) -> Converter | None:
    return CONVERTERS.get(pixel_format)


def supported() -> list[str]:
    return list(CONVERTERS)
