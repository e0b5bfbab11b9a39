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
    assert frames[1].image is None and "unreadable image file" in frames[1].error


@pytest.mark.parametrize("uri,expected", [
    ("file://", "expected a path after file://"),
    ("file:///nope/*.png", "expected image files"),
    ("ftp://host/x", "expected a URI starting with"),
])
def test_bad_uris(uri, expected):
    with pytest.raises(InputError, match=expected):
        open_source(uri)
