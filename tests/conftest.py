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
