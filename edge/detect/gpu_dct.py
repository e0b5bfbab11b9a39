"""Seed 001's DCT fusion (eq. 17-22) on the GPU with numba.cuda, on the engine output where it lies.

Three kernels on device arrays, nothing copied back but the patch-feature grid (Rr x Rc floats),
two sums and a hit count; the mask comes back only when a pixel is a defect (NG frames):

- patch_features: one block per patch; the block stages the N x N source and reconstruction
  patches in shared memory, thread (u, v) computes F(u, v) of both (eq. 17-18) for u, v < L, and
  the block reduces f = (sum |F| - |F(0,0)|) / (L*L - 1) (eq. 19) into |f(src) - f(rec)|.
- residual_sums: sum and sum of squares of |src - rec| (eq. 22), a block reduction plus one
  atomic add per block.
- fuse: one block per marked patch (eq. 20), mask = 1 where |src - rec| >= mu + gamma*sigma (eq. 21).

Agrees with the CPU kernel (edge.detect.dct_kernel) within float tolerance; tested under Numba's
CUDA simulator on machines without a GPU (tests/test_gpu_path.py) and on a GPU where there is one.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numba import cuda, float32, float64

from ..recipe import DctFusion
from .dct_kernel import grid_shape

MAX_N = 64   # shared-memory patch side the kernel is compiled for (recipe patches are 8..256; >64 falls back)
MAX_L = 16
THREADS = 256


def dct_basis(n: int, l: int) -> np.ndarray:
    """C[u, i] = c(u) cos((i + 0.5) pi u / n), u < l, i < n."""
    u = np.arange(l)[:, None]
    i = np.arange(n)[None, :]
    c = np.where(u == 0, math.sqrt(1.0 / n), math.sqrt(2.0 / n))
    return (c * np.cos((i + 0.5) * np.pi * u / n)).astype(np.float32)


@cuda.jit(cache=False)
def patch_features(src, rec, basis, n, s, l, feat_diff):
    r, c = cuda.blockIdx.y, cuda.blockIdx.x
    tid = cuda.threadIdx.x
    ps = cuda.shared.array((MAX_N, MAX_N), float32)
    pr = cuda.shared.array((MAX_N, MAX_N), float32)
    fs = cuda.shared.array(MAX_L * MAX_L, float32)
    fr = cuda.shared.array(MAX_L * MAX_L, float32)
    y0, x0 = r * s, c * s
    k = tid
    while k < n * n:
        i, j = k // n, k % n
        ps[i, j] = src[y0 + i, x0 + j]
        pr[i, j] = rec[y0 + i, x0 + j]
        k += cuda.blockDim.x
    cuda.syncthreads()
    if tid < l * l:
        u, v = tid // l, tid % l
        acc_s = float32(0.0)
        acc_r = float32(0.0)
        for i in range(n):
            row_s = float32(0.0)
            row_r = float32(0.0)
            for j in range(n):
                cv = basis[v, j]
                row_s += cv * ps[i, j]
                row_r += cv * pr[i, j]
            cu = basis[u, i]
            acc_s += cu * row_s
            acc_r += cu * row_r
        fs[tid] = abs(acc_s)
        fr[tid] = abs(acc_r)
    cuda.syncthreads()
    if tid == 0:
        ts = float32(0.0)
        tr = float32(0.0)
        for q in range(1, l * l):  # F(0,0) left out (eq. 19)
            ts += fs[q]
            tr += fr[q]
        feat_diff[r, c] = abs(ts - tr) / (l * l - 1)


@cuda.jit(cache=False)
def residual_sums(src, rec, sums):
    h, w = src.shape
    tid = cuda.threadIdx.x
    acc = cuda.shared.array(THREADS, float64)
    acc2 = cuda.shared.array(THREADS, float64)
    a = float64(0.0)
    a2 = float64(0.0)
    k = cuda.grid(1)
    stride = cuda.gridsize(1)
    while k < h * w:
        g = abs(src[k // w, k % w] - rec[k // w, k % w])
        a += g
        a2 += g * g
        k += stride
    acc[tid] = a
    acc2[tid] = a2
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            acc[tid] += acc[tid + step]
            acc2[tid] += acc2[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        cuda.atomic.add(sums, 0, acc[0])
        cuda.atomic.add(sums, 1, acc2[0])


@cuda.jit(cache=False)
def fuse(src, rec, feat_diff, n, s, epsilon, gamma, sums, mask, hits):
    r, c = cuda.blockIdx.y, cuda.blockIdx.x
    if feat_diff[r, c] <= epsilon:
        return
    h, w = src.shape
    count = h * w
    mu = sums[0] / count
    var = sums[1] / count - mu * mu
    threshold = float32(mu + gamma * math.sqrt(max(var, 0.0)))
    k = cuda.threadIdx.x
    local = 0
    while k < n * n:
        y, x = r * s + k // n, c * s + k % n
        if abs(src[y, x] - rec[y, x]) >= threshold:
            mask[y, x] = 1
            local += 1
        k += cuda.blockDim.x
    if local:
        cuda.atomic.add(hits, 0, local)


@cuda.jit(cache=False)
def zero_mask(mask, sums, hits):
    """Clear the mask and the counters on the device: numba's `arr[:] = 0` allocates and uploads
    a host array per call."""
    k = cuda.grid(1)
    stride = cuda.gridsize(1)
    h, w = mask.shape
    while k < h * w:
        mask[k // w, k % w] = 0
        k += stride
    if cuda.grid(1) == 0:
        sums[0] = 0.0
        sums[1] = 0.0
        hits[0] = 0


class GpuDctFusion:
    """Device-side DCT fusion for (H, W) float32 device arrays; buffers made once per shape."""

    def __init__(self, p: DctFusion, stream=None):
        if p.patch > MAX_N or p.block > MAX_L:
            raise ValueError(f"GPU DCT fusion supports patch <= {MAX_N} and block <= {MAX_L}")
        self.p = p
        self.stream = stream if stream is not None else cuda.stream()
        self.basis = cuda.to_device(dct_basis(p.patch, p.block), stream=self.stream)
        self._shape = None

    def _buffers(self, h, w):
        if self._shape != (h, w):
            rows, cols = grid_shape(h, w, self.p.patch, self.p.stride)
            self.grid = (cols, rows)
            self.feat_diff = cuda.device_array((rows, cols), np.float32, stream=self.stream)
            self.sums = cuda.device_array(2, np.float64, stream=self.stream)
            self.hits = cuda.device_array(1, np.int64, stream=self.stream)
            self.mask = cuda.device_array((h, w), np.uint8, stream=self.stream)
            self.host_diff = cuda.pinned_array((rows, cols), np.float32)
            self.host_sums = cuda.pinned_array(2, np.float64)
            self.host_hits = cuda.pinned_array(1, np.int64)
            self._shape = (h, w)

    def __call__(self, src, rec):
        """Device arrays in; (|df| grid on the host, mu, sigma, mask device array, defect pixel count)."""
        p, st = self.p, self.stream
        h, w = src.shape
        self._buffers(h, w)
        blocks = min(1024, (h * w + THREADS - 1) // THREADS)
        zero_mask[blocks, THREADS, st](self.mask, self.sums, self.hits)
        if self.grid[0] == 0 or self.grid[1] == 0:  # frame smaller than one patch: nothing can be marked
            residual_sums[blocks, THREADS, st](src, rec, self.sums)
            sums = self.sums.copy_to_host(self.host_sums, stream=st)
            st.synchronize()
            mu = sums[0] / (h * w)
            return self.host_diff, float(mu), math.sqrt(max(sums[1] / (h * w) - mu * mu, 0.0)), self.mask, 0
        patch_features[self.grid, max(32, p.block * p.block), st](src, rec, self.basis, p.patch, p.stride,
                                                                   p.block, self.feat_diff)
        residual_sums[blocks, THREADS, st](src, rec, self.sums)
        fuse[self.grid, 128, st](src, rec, self.feat_diff, p.patch, p.stride, np.float32(p.epsilon),
                                 np.float32(p.gamma), self.sums, self.mask, self.hits)
        self.feat_diff.copy_to_host(self.host_diff, stream=st)  # into pinned buffers: nothing allocated per frame
        sums = self.sums.copy_to_host(self.host_sums, stream=st)
        hits = self.hits.copy_to_host(self.host_hits, stream=st)
        st.synchronize()
        count = h * w
        mu = sums[0] / count
        sigma = math.sqrt(max(sums[1] / count - mu * mu, 0.0))
        return self.host_diff, float(mu), float(sigma), self.mask, int(hits[0])


def _pinned_like(dev) -> np.ndarray:
    """A pinned host array with the device array's shape and strides (rows of its pitch)."""
    h, w = dev.shape
    pitch = dev.strides[0] // dev.dtype.itemsize
    if dev.strides[1] != dev.dtype.itemsize or pitch < w:
        return cuda.pinned_array((h, w), dev.dtype)  # not a row-pitched view: copied as it is
    return cuda.pinned_array((h, pitch), dev.dtype)[:, :w]


class GpuDctFusionDetector:
    """The station's detector interface over device arrays: returns the same Detection as
    DctFusionDetector. Good frames bring back the patch grid and three numbers; NG frames also
    bring back the mask, the source and the reconstruction to find regions on the host."""

    def __init__(self, p: DctFusion):
        self.p = p
        self.kernels = GpuDctFusion(p)
        self._shape = None

    def __call__(self, src_dev, rec_dev):
        from . import Detection
        from .regions import find_regions

        h, w = src_dev.shape
        key = (h, w, src_dev.strides, rec_dev.strides)
        if self._shape != key:
            self.mask = cuda.pinned_array((h, w), np.uint8)
            # the frame's views keep the engine input's row pitch when the frame is narrower: a D->H
            # copy needs a host array of the same strides (numba: "incompatible strides")
            self.src = _pinned_like(src_dev)
            self.rec = _pinned_like(rec_dev)
            self.mask_dirty = True
            self._shape = key
        diff, mu, sigma, mask_dev, hits = self.kernels(src_dev, rec_dev)
        p = self.p
        regions = []
        if hits:
            st = self.kernels.stream
            mask_dev.copy_to_host(self.mask, stream=st)
            src_dev.copy_to_host(self.src, stream=st)
            rec_dev.copy_to_host(self.rec, stream=st)
            st.synchronize()
            self.mask_dirty = True
            rows, cols = np.nonzero(diff > p.epsilon)
            window = (rows.min() * p.stride, rows.max() * p.stride + p.patch,
                      cols.min() * p.stride, cols.max() * p.stride + p.patch)
            regions = find_regions(self.mask, np.abs(self.src - self.rec), window)
        elif self.mask_dirty:  # cleared once after an NG frame, not on every good one
            self.mask.fill(0)
            self.mask_dirty = False
        score = float(diff.max()) if diff.size else 0.0
        return Detection(self.mask, score, regions, {"mu": mu, "sigma": sigma, "threshold": mu + p.gamma * sigma,
                                                     "marked_patches": int((diff > p.epsilon).sum()), "gpu": True})


def make_gpu_detector(d):
    """A GPU detector for this recipe, or None (other methods, patch too large, no CUDA)."""
    if d.method != "dct_fusion" or d.dct_fusion.patch > MAX_N or d.dct_fusion.block > MAX_L:
        return None
    try:
        available = cuda.is_available()
    except Exception:
        available = False
    if not available:
        logging.getLogger(__name__).warning(
            "GPU detection is off: numba cannot reach CUDA (pip install -e '.[gpu]' brings numba-cuda with NVVM); "
            "DCT fusion runs on the CPU")
        return None
    return GpuDctFusionDetector(d.dct_fusion)
