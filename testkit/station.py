"""A throw-away station for tests and benchmarks: the demo autoencoder, textured frames with
painted defects, a station.yaml, and the local ports its network peers listen on."""

from __future__ import annotations

import numpy as np


def make_station(tmp_path, count=8, defects=(2, 5), size=384, source_opts="", extra_yaml=""):
    """A 128x128 autoencoder (frames of `size` are tiled) and `count` frames, `defects` painted.
    Returns the config path; the model is ae.onnx and the frames parts/ beside it."""
    import cv2
    import onnx

    from edge.demo import paint_defect, texture
    from testkit.lowpass_model import DEMO_RECIPE, build_lowpass_autoencoder
    onnx.save(build_lowpass_autoencoder(size=128, recipe=DEMO_RECIPE), tmp_path / "ae.onnx")
    frames = tmp_path / "parts"
    frames.mkdir(exist_ok=True)
    for i in range(count):
        img = texture(100 + i, size)
        if i in defects:
            paint_defect(img, i, 100 + i)
        cv2.imwrite(str(frames / f"p{i}.png"), (img * 255 + 0.5).astype(np.uint8))
    cfg = tmp_path / "station.yaml"
    cfg.write_text(f"station: t\ncameras:\n  cam0:\n    source: file://parts{source_opts}\nmodel:\n  path: ae.onnx\n"
                   + extra_yaml)
    return cfg


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0):
    import socket
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")
