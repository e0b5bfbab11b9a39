"""Frame-source doubles for what cannot be staged with the real sources: a free-running camera
faster than the station, a camera whose driver wedges."""

from __future__ import annotations

import threading
import time

import numpy as np


class SyntheticCamera:
    """A live camera (frames are dropped when the station falls behind) delivering 256x256 grey
    frames every `period_s`. While `hang` is set, grab() blocks until `release` is set, as a
    wedged driver's call does."""
    live = True

    def __init__(self, period_s: float = 0.001, hang: threading.Event | None = None,
                 release: threading.Event | None = None):
        self.period_s, self.hang, self.release = period_s, hang, release
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def grab(self, timeout_s: float = 0.5):
        from edge.sources import Frame
        if self.hang is not None and self.hang.is_set():
            self.release.wait()
        time.sleep(self.period_s)
        self.n += 1
        return Frame(self.n, np.full((256, 256), 100 + self.n % 50, np.uint8), name=f"f{self.n}")
