"""Leases on preallocated per-frame buffers, so that which stage owns a buffer is enforced, not
agreed between files.

A pool holds a fixed number of equally shaped arrays. acquire() hands one out as a Lease and
blocks while every one is out; the holder passes the lease along with the frame (inference ->
analysis queue -> analysis) and the last holder releases it. A buffer is therefore never
rewritten while an earlier frame still reads it, whatever the queue sizes: a pool that is too
small costs throughput (the writer waits), never correctness.
"""

from __future__ import annotations

import threading

import numpy as np


class Lease:
    __slots__ = ("array", "_pool")

    def __init__(self, array: np.ndarray, pool: "BufferPool"):
        self.array, self._pool = array, pool

    def release(self):
        pool, self._pool = self._pool, None
        if pool is None:
            raise RuntimeError("lease released twice")
        pool._give_back(self.array)


class BufferPool:
    def __init__(self, shape: tuple[int, ...], dtype, count: int):
        self.shape, self.count = tuple(shape), count
        self._free = [np.zeros(shape, dtype) for _ in range(count)]
        self._cond = threading.Condition()

    def acquire(self, timeout: float | None = None) -> Lease:
        with self._cond:
            if not self._cond.wait_for(lambda: self._free, timeout):
                raise TimeoutError(f"no free {self.shape} buffer in {timeout} s: {self.count} leased and not released")
            return Lease(self._free.pop(), self)

    def _give_back(self, array: np.ndarray):
        with self._cond:
            self._free.append(array)
            self._cond.notify()
