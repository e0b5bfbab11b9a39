"""One small device-memory layer for the GPU runner: pinned host arrays, device buffers, streams,
events and asynchronous copies. Two implementations of the same few calls:

- cuda-python (`cuda.bindings.runtime`, NVIDIA's current bindings; `pip install -e '.[gpu]'`)
- pycuda (common on JetPack stations)

open_memory("auto") takes cuda-python, then pycuda. Nothing here allocates per frame: buffers are
made once by the runner and reused.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import InputError

KINDS = ("auto", "cuda-python", "pycuda")


class Memory(Protocol):
    name: str

    def pinned(self, shape, dtype) -> np.ndarray: ...          # page-locked host array
    def device(self, nbytes: int) -> int: ...                  # device pointer
    def stream(self): ...                                      # object with .handle (int) and .synchronize()
    def event(self): ...                                       # object with .record(stream), .synchronize()
    def elapsed_ms(self, start, end) -> float: ...
    def bind_thread(self) -> None: ...                         # make the device/context current on this thread
    def unbind_thread(self) -> None: ...                       # undo it before the thread ends
    def htod(self, dst: int, src: np.ndarray, stream) -> None: ...
    def dtoh(self, dst: np.ndarray, src: int, stream) -> None: ...
    def close(self) -> None: ...


def open_memory(kind: str = "auto", device: int = 0, where: str = "<config>") -> Memory:
    if kind not in KINDS:
        raise InputError(where, "model.cuda", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    errors = []
    for name in (("cuda-python", "pycuda") if kind == "auto" else (kind,)):
        try:
            if name == "cuda-python":
                from .cuda_python import CudaPythonMemory
                return CudaPythonMemory(device)
            from .pycuda_memory import PyCudaMemory
            return PyCudaMemory(device)
        except ImportError as e:
            errors.append(f"{name}: not installed ({e.name})")
        except RuntimeError as e:
            errors.append(f"{name}: {e}")
    raise InputError(where, "model.cuda", "no usable CUDA layer: " + "; ".join(errors) +
                     " (pip install -e '.[gpu]' installs cuda-python)")
