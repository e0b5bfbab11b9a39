"""edge.cuda on cuda-python: cuda.bindings.runtime (12.6.1 and later), or the older module
cuda.cudart (12.0-12.6.0, which has no cuda.bindings)."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

try:
    from cuda.bindings import runtime as rt
except ImportError:
    from cuda import cudart as rt


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

    def destroy(self):
        rt.cudaStreamDestroy(self.obj)


class _Event:
    def __init__(self):
        # blocking sync: a waiting thread sleeps instead of spinning on a core the acquisition and
        # analysis threads need
        self.obj = _check(rt.cudaEventCreateWithFlags(rt.cudaEventBlockingSync))

    def record(self, stream):
        _check(rt.cudaEventRecord(self.obj, stream.obj))

    def synchronize(self):
        _check(rt.cudaEventSynchronize(self.obj))

    def destroy(self):
        rt.cudaEventDestroy(self.obj)


class CudaPythonMemory:
    name = "cuda-python"

    def __init__(self, device: int = 0):
        count = _check(rt.cudaGetDeviceCount())  # raises "insufficient driver" where there is no GPU
        if device >= count:
            raise RuntimeError(f"no CUDA device {device} ({count} present)")
        _check(rt.cudaSetDevice(device))
        self.device_index = device
        self._host, self._dev, self._streams, self._events = [], [], [], []
        self._bound = threading.local()
        self._bound.ok = True

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

    def bind_thread(self):
        """Make this memory's device current on the calling thread (the runtime API's device is
        per thread: the pipeline's inference thread is not the one that opened the runner)."""
        if not getattr(self._bound, "ok", False):
            _check(rt.cudaSetDevice(self.device_index))
            self._bound.ok = True

    def unbind_thread(self):
        """The runtime API keeps no per-thread stack: nothing to undo."""

    def stream(self):
        s = _Stream()
        self._streams.append(s)
        return s

    def event(self):
        e = _Event()
        self._events.append(e)
        return e

    def elapsed_ms(self, start, end) -> float:
        return float(_check(rt.cudaEventElapsedTime(start.obj, end.obj)))

    def htod(self, dst: int, src: np.ndarray, stream):
        _check(rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                  stream.obj))

    def dtoh(self, dst: np.ndarray, src: int, stream):
        _check(rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                  stream.obj))

    def close(self):
        for e in self._events:
            e.destroy()
        for s in self._streams:
            s.destroy()
        for p in self._dev:
            rt.cudaFree(p)
        for p in self._host:
            rt.cudaFreeHost(p)
        self._host, self._dev, self._streams, self._events = [], [], [], []
