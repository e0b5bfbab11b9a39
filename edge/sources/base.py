"""What every frame source hands the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

import numpy as np

from ..errors import InputError


class EndOfStream(Exception):
    """A finite source (replay without loop) has no more frames."""


@dataclass
class Frame:
    frame_id: int
    image: np.ndarray | None  # owned copy (H, W) or (H, W, C); None when the frame is unusable
    timestamp: int = 0        # camera timestamp (device ticks) or 0 where the source has none
    t_grab: float = 0.0       # time.perf_counter() when the frame reached the host
    acquire_s: float = 0.0    # time spent waiting for / reading the frame
    name: str = ""            # file name for replay, device serial for cameras
    error: str | None = None  # why the frame is unusable; the pipeline counts it as dropped
    meta: dict = field(default_factory=dict)
    bits: int | None = None   # significant bits of a uint16 image (a 12-bit camera: 12); None = the dtype's


class Source(Protocol):
    """A context manager: resources on enter, released on exit."""

    live: bool  # True for cameras: frames are lost if not taken in time

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc) -> None: ...

    def grab(self, timeout_s: float) -> Frame | None:
        """The next frame, None on timeout; raises EndOfStream when a finite source is done."""


def query_options(query: str, where: str, key: str, spec: dict) -> dict:
    """Parse `?a=1&b=x` against spec {name: (type, default)}; unknown or bad options are InputErrors."""
    out = {name: default for name, (_, default) in spec.items()}
    for name, text in parse_qsl(query, keep_blank_values=True):
        if name not in spec:
            raise InputError(where, key, f"unknown URI option '{name}' (expected one of: {', '.join(sorted(spec))})")
        tp = spec[name][0]
        try:
            if tp is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                out[name] = text.lower() in ("1", "true", "yes", "on")
            else:
                out[name] = tp(text)
        except ValueError:
            raise InputError(where, key, f"URI option '{name}' expected {tp.__name__}, got '{text}'") from None
    return out
