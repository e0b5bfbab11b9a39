import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Demo frames go to a per-session cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _edge_logging():
    """The "edge" loggers as a library user has them: INFO records reach the root logger (caplog
    sees them). A command run in this process installs its stderr handler; it goes after the test."""
    import logging
    edge = logging.getLogger("edge")
    edge.setLevel(logging.INFO)
    yield
    for h in list(edge.handlers):
        edge.removeHandler(h)
    edge.propagate = True


@pytest.fixture(scope="session")
def lowpass_model(tmp_path_factory):
    """The analytic low-pass autoencoder (256x256, the demo recipe) as a file: predictable verdicts
    on the synthetic textures, whatever model the package ships."""
    import onnx

    from testkit.lowpass_model import build_lowpass_autoencoder
    path = tmp_path_factory.mktemp("models") / "lowpass.onnx"
    onnx.save(build_lowpass_autoencoder(), path)
    return path


def station_config(tmp_path, model, source: str = "file://parts", camera: str = "cam", **sections):
    """A validated StationConfig for one camera (the same parse edge-run does), for building a
    Station in-process; `cam`: the camera's settings, `sections`: top-level YAML sections (outputs=...)."""
    from edge.config import parse
    parts = Path(tmp_path) / "parts"
    if source == "file://parts" and not parts.exists():  # a real source for the config; a test double may replace it
        import cv2
        parts.mkdir()
        cv2.imwrite(str(parts / "p0.png"), (textured(0, 128, 128) * 255).astype(np.uint8))
    cam = sections.pop("cam", {})
    raw = {"station": "st", "cameras": {camera: {"source": source, **cam}}, "model": {"path": str(model)},
           "outputs": sections.pop("outputs", {"jsonl": {"stdout": False}}), **sections}
    return parse(raw, "<test>", Path(tmp_path))


def good_tree(root, sizes):
    """A folder of good training images (train/good), one textured image per (h, w) in `sizes`."""
    import cv2
    (root / "train/good").mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), (textured(50 + i, h, w) * 255).astype(np.uint8))
    return root


def train_briefly(tmp_path, sizes, **extra):
    """edge-train with its defaults (the default method) for a few steps on good_tree(sizes):
    (model.onnx, train.json's summary). `extra`: train.yaml keys."""
    import json

    import yaml

    from train.cli import edge_train_main
    data = good_tree(tmp_path / "data", sizes)
    cfg = {"data": str(data), "out": str(tmp_path / "run"), "time_budget_min": 0.05, "epochs": 2,
           "steps_per_epoch": 3, "batch": 4, "holdout": 0.25, "seed": 0, **extra}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    assert edge_train_main(["--config", str(tmp_path / "t.yaml")]) == 0
    return tmp_path / "run/model.onnx", json.loads((tmp_path / "run/train.json").read_text())["summary"]


def textured(seed: int, h: int, w: int) -> np.ndarray:
    """A real-looking surface texture in [0, 1] (the demo generator's, cropped/tiled to h x w)."""
    from edge.demo import texture
    size = max(h, w)
    return texture(seed, size)[:h, :w].copy()


def run_cli(args, **kw):
    import subprocess
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(kw.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          env=env, timeout=kw.pop("timeout", 120), **kw)


from testkit.station import free_port, make_station, wait_port  # noqa: E402,F401  (shared with bench/)


def wait_until(condition, timeout=5.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last value."""
    import time
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def wait_line(stream, pattern, timeout=60):
    """Read `stream` line by line until one matches `pattern`; the match object."""
    import re
    import time
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no line matching {pattern!r} in: {''.join(seen)[-2000:]}")


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) -> a real tmpfs of that size (e.g. '200k'), unmounted after the test."""
    import subprocess
    mounted = []

    def mount(size: str):
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True).returncode:
            pytest.skip("cannot mount tmpfs here")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)])
