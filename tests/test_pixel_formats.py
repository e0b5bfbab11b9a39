"""Camera pixel formats into frames, against independent references on synthetic buffers: packed
layouts re-packed bit by bit from the GenICam PFNC / GigE Vision definitions, colour orders and
YUV 4:2:2 against OpenCV, Bayer mosaics built from a known colour image; and the bit depth a
frame carries through the station's preprocessing."""

import cv2
import numpy as np
import pytest

from edge.preprocess import Preprocessor
from edge.recipe import Preprocess
from edge.sources.pixel_formats import converter, supported

W, H = 16, 6
RNG = np.random.default_rng(0)


def _bits_lsb_first(values: np.ndarray, bits: int) -> np.ndarray:
    """PFNC 'p' packing: each value's bits, least significant first, concatenated, in bytes LSB first."""
    stream = [(int(v) >> k) & 1 for v in values for k in range(bits)]
    return np.packbits(np.array(stream, np.uint8).reshape(-1, 8)[:, ::-1], axis=1).ravel()


def _gev_packed(values: np.ndarray, bits: int) -> np.ndarray:
    low = bits - 8
    out = []
    for a, b in values.reshape(-1, 2):
        out += [int(a) >> low, ((int(b) & ((1 << low) - 1)) << 4) | (int(a) & ((1 << low) - 1)), int(b) >> low]
    return np.array(out, np.uint8)


@pytest.mark.parametrize("name,bits,pack", [
    ("Mono10p", 10, lambda v: _bits_lsb_first(v, 10)), ("Mono12p", 12, lambda v: _bits_lsb_first(v, 12)),
    ("Mono12Packed", 12, lambda v: _gev_packed(v, 12)), ("Mono10Packed", 10, lambda v: _gev_packed(v, 10)),
    ("Mono12", 12, lambda v: v.astype("<u2").view(np.uint8)), ("Mono16", 16, lambda v: v.astype("<u2").view(np.uint8))])
def test_mono_formats_unpack_to_the_packed_values(name, bits, pack):
    values = RNG.integers(0, 1 << bits, W * H).astype(np.uint16)
    values[:4] = [0, (1 << bits) - 1, 1, 1 << (bits - 1)]  # the extremes and single bits
    conv = converter(name)
    img = conv(pack(values), W, H)
    assert conv.bits == bits and img.dtype == np.uint16 and img.shape == (H, W)
    assert np.array_equal(img.ravel(), values)


@pytest.mark.parametrize("name,code,channels", [("RGB8", cv2.COLOR_RGB2BGR, 3), ("BGR8", None, 3),
                                                 ("RGBa8", cv2.COLOR_RGBA2BGR, 4), ("BGRa8", cv2.COLOR_BGRA2BGR, 4)])
def test_colour_orders_match_opencv(name, code, channels):
    raw = RNG.integers(0, 256, (H, W, channels), dtype=np.uint8)
    img = converter(name)(raw, W, H)
    assert np.array_equal(img, raw if code is None else cv2.cvtColor(raw, code))
    assert img.flags.owndata or img.base is not raw  # the producer's buffer is requeued after this


def _smooth_bgr(h=32, w=48):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([60 + 2 * x, 80 + 3 * y, 200 - 2 * x], -1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,order", [("YUV422_8", "YUYV"), ("YCbCr422_8", "YUYV"), ("YUV422Packed", "UYVY"),
                                        ("YUV422_8_UYVY", "UYVY")])
def test_yuv422_decodes_to_the_colours_encoded(name, order):
    bgr = _smooth_bgr()
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b  # BT.601, as OpenCV decodes it
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128
    uu = (u[:, 0::2] + u[:, 1::2]) / 2  # 4:2:2: one U and V per pixel pair
    vv = (v[:, 0::2] + v[:, 1::2]) / 2
    h, w = y.shape
    packed = np.empty((h, w // 2, 4), np.float32)
    if order == "YUYV":
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = y[:, 0::2], uu, y[:, 1::2], vv
    else:
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = uu, y[:, 0::2], vv, y[:, 1::2]
    img = converter(name)(np.round(packed).clip(0, 255).astype(np.uint8), w, h)
    assert img.shape == bgr.shape and np.abs(img.astype(int) - bgr).max() <= 4


def _mosaic(bgr, pattern):
    """A GenICam Bayer<pattern> frame: the pattern names the colours of the first row's two pixels."""
    idx = {"R": 2, "G": 1, "B": 0}
    first, second = pattern, {"RG": "GB", "GR": "BG", "GB": "RG", "BG": "GR"}[pattern]
    out = np.empty(bgr.shape[:2], bgr.dtype)
    for dy, row in enumerate((first, second)):
        for dx, colour in enumerate(row):
            out[dy::2, dx::2] = bgr[dy::2, dx::2, idx[colour]]
    return out


@pytest.mark.parametrize("pattern", ["RG", "GB", "GR", "BG"])
def test_bayer_demosaics_to_the_right_colours_at_8_10_and_12_bits(pattern):
    bgr = _smooth_bgr()
    h, w = bgr.shape[:2]
    img = converter(f"Bayer{pattern}8")(_mosaic(bgr, pattern), w, h)
    assert np.abs(img[2:-2, 2:-2].astype(int) - bgr[2:-2, 2:-2]).max() <= 3  # interior: bilinear is exact on ramps
    wide = bgr.astype(np.uint16) * 16  # the same scene at 12 bits
    mosaic12 = _mosaic(wide, pattern)
    for name, data in ((f"Bayer{pattern}12", mosaic12.astype("<u2").view(np.uint8)),
                       (f"Bayer{pattern}12p", _bits_lsb_first(mosaic12.ravel(), 12)),
                       (f"Bayer{pattern}12Packed", _gev_packed(mosaic12.ravel(), 12))):
        img12 = converter(name)(data, w, h)
        assert converter(name).bits == 12 and img12.dtype == np.uint16
        assert np.abs(img12[2:-2, 2:-2].astype(int) - wide[2:-2, 2:-2]).max() <= 48, name


def test_every_format_the_issue_names_has_a_converter():
    for name in ("Mono8", "Mono10", "Mono12", "Mono16", "Mono10p", "Mono12p", "Mono12Packed", "RGB8", "BGR8",
                 "RGBa8", "BGRa8", "YCbCr422_8", "YUV422_8", "BayerRG8", "BayerGB10", "BayerGR12", "BayerBG12p"):
        assert name in supported()
    assert converter("YUV411Packed") is None


def test_frames_are_scaled_by_their_real_bit_depth():
    """A 12-bit camera frame and a 16-bit PNG of the same part read as its 8-bit picture does."""
    pre = Preprocessor(Preprocess(), (8, 8))
    grey8 = RNG.integers(0, 256, (8, 8), dtype=np.uint8)
    ref = pre.to_model_space(grey8)
    from12 = pre.to_model_space(((grey8.astype(np.int64) * 4095 + 127) // 255).astype(np.uint16), bits=12)
    from16 = pre.to_model_space(grey8.astype(np.uint16) * 257)  # a 16-bit PNG: bits from the dtype
    assert np.abs(from12 - ref).max() < 1 / 255 and np.abs(from16 - ref).max() < 1e-6
    assert ref.max() <= 1.0 and from16.max() <= 1.0
