"""The one protocol the pipeline talks to, whatever runs the model (Polygraphy-style runners)."""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np


class Runner(Protocol):
    """Context manager: allocates on enter, frees on exit, never allocates per frame.

    input_shape is the model's fixed (batch, channels, height, width); batch may be 0 where the
    model accepts any batch. infer() takes float32 (n, C, H, W) and returns the first output as
    float32 (n, C', H, W), a view into the runner's own buffer valid until the next call.
    """

    input_shape: tuple[int, int, int, int]
    metadata: Mapping[str, str]
    name: str

    def __enter__(self) -> "Runner": ...

    def __exit__(self, *exc) -> None: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...
