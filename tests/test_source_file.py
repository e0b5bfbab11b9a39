import time

import cv2
import numpy as np
import pytest

from edge.errors import InputError
from edge.sources import EndOfStream, open_source


def _frames(tmp_path, n=3):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        cv2.imwrite(str(d / f"f{i}.png"), np.full((32, 48), i * 10, np.uint8))
    return d


def _drain(src, limit=100):
    out = []
    with src:
        for _ in range(limit):
            try:
                out.append(src.grab(0.1))
            except EndOfStream:
                break
    return out


def test_folder_replays_in_name_order_then_ends(tmp_path):
    d = _frames(tmp_path)
    frames = _drain(open_source(f"file://{d}"))
    assert [f.name for f in frames] == ["f0.png", "f1.png", "f2.png"]
    assert [f.frame_id for f in frames] == [0, 1, 2]
    assert [int(f.image[0, 0]) for f in frames] == [0, 10, 20]


def test_glob_loop_and_start(tmp_path):
    d = _frames(tmp_path)
    src = open_source(f"file://{d}/f*.png?loop=1&start=1")
    with src:
        names = [src.grab(0.1).name for _ in range(5)]
    assert names == ["f1.png", "f2.png", "f0.png", "f1.png", "f2.png"]


def test_relative_path_resolves_against_base_dir(tmp_path):
    _frames(tmp_path)
    assert len(_drain(open_source("file://imgs", base_dir=tmp_path))) == 3


def test_fps_paces_replay(tmp_path):
    d = _frames(tmp_path)
    t0 = time.perf_counter()
    frames = _drain(open_source(f"file://{d}?fps=20"))
    assert len(frames) == 3
    assert time.perf_counter() - t0 >= 0.09  # 3 frames at 20/s: two full intervals at least


def test_video_replay(tmp_path):
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()
    frames = _drain(open_source(f"file://{path}"))
    assert len(frames) == 5 and frames[0].image.shape == (48, 64, 3)
    assert abs(int(frames[4].image.mean()) - 160) < 8
    looped = open_source(f"file://{path}?loop=1")
    with looped:
        assert len([looped.grab(0.1) for _ in range(12)]) == 12


def test_unreadable_image_is_a_frame_with_an_error(tmp_path):
    d = _frames(tmp_path, 2)
    (d / "f1.png").write_bytes(b"not a png")
    frames = _drain(open_source(f"file://{d}"))
    assert frames[0].error is None
    assert frames[1].image is None and "unreadable image" in frames[1].error


@pytest.mark.parametrize("uri,expected", [
    ("file://", "expected a path after file://"),
    ("file:///nope/*.png", "expected image files"),
    ("ftp://host/x", "expected a URI starting with"),
])
def test_bad_uris(uri, expected):
    with pytest.raises(InputError, match=expected):
        open_source(uri)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_corrupt_and_odd_pngs_get_our_one_line_reason_and_libpng_prints_nothing(tmp_path):
    """libpng writes its own 'libpng error/warning' lines to stderr from C; the reader checks PNGs
    first so a corrupt file is one clear reason and a valid file with a bad colour profile reads."""
    import subprocess
    import sys

    import cv2
    good = cv2.imencode(".png", (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64))[1].tobytes()
    idat = good.index(b"IDAT") - 4
    broken = bytearray(good)
    broken[idat + 12] ^= 0xFF  # pixel data changed, CRC not
    # a valid PNG with an iCCP chunk whose profile is garbage: libpng warns about such profiles
    iccp = _png_chunk(b"iCCP", b"bad\x00\x00" + __import__("zlib").compress(b"not an ICC profile"))
    with_iccp = good[:idat] + iccp + good[idat:]
    for name, data in (("broken.png", bytes(broken)), ("iccp.png", with_iccp), ("cut.png", good[:idat + 20])):
        (tmp_path / name).write_bytes(data)
    code = ("import sys; from edge.images import read_image\n"
            "for n in sys.argv[1:]:\n    im, why = read_image(n)\n    print(n, None if im is None else im.shape, why)")
    res = subprocess.run([sys.executable, "-c", code, *(str(tmp_path / n) for n in ("broken.png", "iccp.png", "cut.png"))],
                         capture_output=True, text=True)
    out = res.stdout.splitlines()
    assert "fails its CRC" in out[0] and "(64, 64) None" in out[1] and "truncated PNG" in out[2], res.stdout
    assert "libpng" not in res.stderr, res.stderr
    # what OpenCV alone does with the same files (so the test shows the guard is needed)
    raw = subprocess.run([sys.executable, "-c", "import cv2, sys; [cv2.imread(n) for n in sys.argv[1:]]",
                          str(tmp_path / "broken.png"), str(tmp_path / "iccp.png")], capture_output=True, text=True)
    assert "libpng" in raw.stderr
