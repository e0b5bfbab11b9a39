"""edge.cuda on pycuda (builds only where the NVIDIA driver is: JetPack, GPU hosts)."""

from __future__ import annotations

import threading

import numpy as np
import pycuda.driver as cuda


class _Stream:
    def __init__(self):
        self.obj = cuda.Stream()
        self.handle = int(self.obj.handle)

    def synchronize(self):
        self.obj.synchronize()


class _Event:
    def __init__(self):
        self.obj = cuda.Event(cuda.event_flags.BLOCKING_SYNC)  # waiters sleep instead of spinning

    def record(self, stream):
        self.obj.record(stream.obj)

    def synchronize(self):
        self.obj.synchronize()


class PyCudaMemory:
    name = "pycuda"

    def __init__(self, device: int = 0):
        try:
            cuda.init()
            self.ctx = cuda.Device(device).retain_primary_context()  # shared with TensorRT's runtime API use
        except cuda.Error as e:
            raise RuntimeError(str(e)) from None
        self.ctx.push()
        self._keep = []
        self._bound = threading.local()
        self._bound.ok = True
        self._pushed = [threading.get_ident()]

    def bind_thread(self):
        """Push the context on the calling thread once: a CUDA context is current per thread, and
        the pipeline's inference thread is not the one that opened the runner ("invalid device
        context" on the first frame otherwise)."""
        if not getattr(self._bound, "ok", False):
            self.ctx.push()
            self._bound.ok = True
            self._pushed.append(threading.get_ident())

    def unbind_thread(self):
        """Pop what bind_thread pushed on the calling thread: pycuda aborts the whole process
        ("context stack was not empty") when a thread ends with a context still pushed."""
        if getattr(self._bound, "ok", False) and threading.get_ident() != self._pushed[0]:
            try:
                self.ctx.pop()
            except cuda.Error:
                pass
            self._bound.ok = False
            self._pushed.remove(threading.get_ident())

    def pinned(self, shape, dtype) -> np.ndarray:
        a = cuda.pagelocked_empty(shape, dtype)
        self._keep.append(a)
        return a

    def device(self, nbytes: int) -> int:
        buf = cuda.mem_alloc(nbytes)
        self._keep.append(buf)
        return int(buf)

    def stream(self):
        return _Stream()

    def event(self):
        return _Event()

    def elapsed_ms(self, start, end) -> float:
        return float(end.obj.time_since(start.obj))

    def htod(self, dst: int, src: np.ndarray, stream):
        cuda.memcpy_htod_async(dst, src, stream.obj)

    def dtoh(self, dst: np.ndarray, src: int, stream):
        cuda.memcpy_dtoh_async(dst, src, stream.obj)

    def close(self):
        self._keep.clear()
        try:  # the opening thread's push; other threads' pushes end with their threads
            self.ctx.pop()
        except cuda.Error:
            pass
