"""The one protocol the pipeline talks to, whatever runs the model (Polygraphy-style runners).

Every runner implements all of it; the pipeline never probes for methods:

- open() allocates everything (sessions, engines, pinned and device buffers) and close() frees
  it; `with runner:` does both. Nothing is allocated per frame, and nothing depends on warm-up.
- infer(batch) runs (n, C, H, W) float32 tiles and returns the first output as float32.
- submit(batch) starts one batch and returns a handle; collect(handle) waits for it. Where
  `overlaps` is False (ONNX Runtime) submit runs the model there and then, so the pipeline only
  overlaps frames on runners that really run them asynchronously.
- next_input() is the buffer the next submit() reads when given None (the GPU runner's pinned
  upload buffer: the frame is cut into it in one pass).
- last_timings: {Stage: seconds} measured inside the runner for the last collect (GPU events);
  a fresh dict per collect, owned by the caller from then on.
- device_views(handle, h, w): the collected input and output as device arrays for detection on
  the GPU, where `device_outputs` is True.

Buffer ownership: what infer() and collect() return belongs to the runner and is valid until
the same buffer is submitted again (the next infer(); the same slot's next submit()). A caller
that keeps it longer copies it; the pipeline copies it into a leased stitch buffer at once.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import numpy as np


class Runner(Protocol):
    input_shape: tuple[int, int, int, int]  # (batch, C, H, W); batch 0 = any batch; H = W = 0: any frame size
    metadata: Mapping[str, str]
    name: str
    overlaps: bool          # submit() returns before the model has run
    device_outputs: bool    # device_views() works (float32 output on a GPU)
    last_timings: dict

    def open(self) -> "Runner": ...

    def close(self) -> None: ...

    def __enter__(self) -> "Runner": ...

    def __exit__(self, *exc) -> None: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def next_input(self) -> np.ndarray: ...

    def submit(self, batch: np.ndarray | None) -> Any: ...

    def collect(self, handle: Any) -> np.ndarray: ...

    def device_views(self, handle: Any, h: int, w: int) -> tuple: ...

    def release_thread(self) -> None:
        """Called by a thread that used the runner, as its last act (pycuda's per-thread context
        stack must be empty when a thread ends, or the process aborts)."""


class RunnerBase:
    """Context management and the synchronous submit/collect, for runners that have no queue.

    Lifecycle (Polygraphy's): open() allocates through _open_impl() and, should that raise half
    way, frees what it got through _close_impl() before the error goes on, since a with-block or
    ExitStack never calls __exit__ for an __enter__ that raised (pinned memory, streams and an
    engine would leak with every failed start). close() is idempotent."""

    overlaps = False
    device_outputs = False
    is_open = False
    name: str
    input_shape: tuple[int, int, int, int]
    last_timings: dict
    _input: np.ndarray | None = None

    def open(self):
        if self.is_open:
            return self
        try:
            self._open_impl()
        except BaseException:
            self._close_impl()
            raise
        self.is_open = True
        return self

    def close(self):
        self._close_impl()
        self.is_open = False

    def _open_impl(self):
        """Allocate; may leave a partial state for _close_impl to free."""

    def _close_impl(self):
        """Free whatever is allocated, from any partial state."""

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def next_input(self) -> np.ndarray:
        shape = (max(1, self.input_shape[0]),) + tuple(self.input_shape[1:])
        if self._input is None or self._input.shape != shape:
            self._input = np.zeros(shape, np.float32)
        return self._input

    def infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def submit(self, batch: np.ndarray | None):
        self.last_timings = {}
        return self.infer(self.next_input() if batch is None else batch)

    def collect(self, handle):
        return handle

    def device_views(self, handle, h: int, w: int):
        raise NotImplementedError(f"{self.name} keeps no outputs on a device")

    def release_thread(self) -> None:
        """Nothing is bound to a thread here."""
