"""edge.cuda on cuda-python (cuda.bindings.runtime)."""

from __future__ import annotations

import ctypes

import numpy as np
from cuda.bindings import runtime as rt


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        _, text = rt.cudaGetErrorString(err)
        raise RuntimeError(f"CUDA: {err.name}: {text.decode() if isinstance(text, bytes) else text}")
    return rest[0] if len(rest) == 1 else tuple(rest) if rest else None


class _Stream:
    def __init__(self):
        self.obj = _check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking))
        self.handle = int(self.obj)

    def synchronize(self):
        _check(rt.cudaStreamSynchronize(self.obj))


class _Event:
    def __init__(self):
        self.obj = _check(rt.cudaEventCreate())

    def record(self, stream):
        _check(rt.cudaEventRecord(self.obj, stream.obj))

    def synchronize(self):
        _check(rt.cudaEventSynchronize(self.obj))


class CudaPythonMemory:
    name = "cuda-python"

    def __init__(self, device: int = 0):
        count = _check(rt.cudaGetDeviceCount())  # raises "insufficient driver" where there is no GPU
        if device >= count:
            raise RuntimeError(f"no CUDA device {device} ({count} present)")
        _check(rt.cudaSetDevice(device))
        self._host, self._dev = [], []

    def pinned(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = _check(rt.cudaMallocHost(nbytes))
        self._host.append(ptr)
        buf = (ctypes.c_byte * nbytes).from_address(int(ptr))
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def device(self, nbytes: int) -> int:
        ptr = int(_check(rt.cudaMalloc(nbytes)))
        self._dev.append(ptr)
        return ptr

    def stream(self):
        return _Stream()

    def event(self):
        return _Event()

    def elapsed_ms(self, start, end) -> float:
        return float(_check(rt.cudaEventElapsedTime(start.obj, end.obj)))

    def htod(self, dst: int, src: np.ndarray, stream):
        _check(rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                  stream.obj))

    def dtoh(self, dst: np.ndarray, src: int, stream):
        _check(rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                  stream.obj))

    def close(self):
        for p in self._dev:
            rt.cudaFree(p)
        for p in self._host:
            rt.cudaFreeHost(p)
        self._host, self._dev = [], []
