"""Seed 001's image difference analysis (eq. 17-22) as fused Numba kernels.

For every N x N patch (stride s) of the source and the reconstruction, only the L x L
low-frequency block of the orthonormal DCT-II is computed, separably and with one even/odd
butterfly per dimension (cos((N-1-i+0.5)pi u/N) = (-1)^u cos((i+0.5)pi u/N)), which halves the
multiply-adds; the even rows fold once more (u = 0 mod 4 and 2 mod 4), saving a quarter of
the first stage. Feature f(p) = (sum |F(u,v)| over the block - |F(0,0)|) / (L*L - 1) (eq. 19).
A patch is marked where |f(src) - f(rec)| > epsilon (eq. 20). The same pass sums the residual
|src - rec| (eq. 22) for mu and sigma band by band, while the band is still in cache.
(Measured alternatives that were slower: per-patch statistics, 8-column register blocking.) The fusion pass
(eq. 21) then visits only the marked patches: defect where residual >= mu + gamma*sigma.

The tested equivalent is testkit.dct_reference.dct_fusion_reference (scipy.fft, full DCT).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


def dct_basis_half(n: int, l: int) -> np.ndarray:
    """C[u, i] = c(u) cos((i + 0.5) pi u / n) for u < l, i < n/2 (eq. 17-18)."""
    u = np.arange(l)[:, None]
    i = np.arange(n // 2)[None, :]
    c = np.where(u == 0, math.sqrt(1.0 / n), math.sqrt(2.0 / n))
    return (c * np.cos((i + 0.5) * np.pi * u / n)).astype(np.float32)


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _patch_feature(img, y0, x0, n, l, ch, e, d, t, et, dt):
    half = n // 2
    quarter = n // 4
    # stage 1 (down the columns): fold rows i and n-1-i into even e and odd d; fold e again
    # (rows i and half-1-i) since C[u, i] for even u is symmetric/antisymmetric about half/2.
    for i in range(half):
        for j in range(n):
            a = img[y0 + i, x0 + j]
            b = img[y0 + n - 1 - i, x0 + j]
            e[i, j] = a + b
            d[i, j] = a - b
    for i in range(quarter):
        for j in range(n):
            a = e[i, j]
            b = e[half - 1 - i, j]
            e[i, j] = a + b              # ee: rows 0..quarter-1, for u = 0 mod 4
            e[half - 1 - i, j] = a - b   # eo: rows half-1..quarter, for u = 2 mod 4
    for u in range(l):
        for j in range(n):
            t[u, j] = 0.0
        if u % 2 == 1:
            for i in range(half):
                cu = ch[u, i]
                for j in range(n):
                    t[u, j] += cu * d[i, j]
        elif u % 4 == 0:
            for i in range(quarter):
                cu = ch[u, i]
                for j in range(n):
                    t[u, j] += cu * e[i, j]
        else:
            for i in range(quarter):
                cu = ch[u, i]
                for j in range(n):
                    t[u, j] += cu * e[half - 1 - i, j]
    # stage 2 (along the rows): fold each t[u, :], then F[u, v] = sum_j C[v, j] * fold[j]
    total = 0.0
    f00 = 0.0
    for u in range(l):
        for j in range(half):
            a = t[u, j]
            b = t[u, n - 1 - j]
            et[j] = a + b
            dt[j] = a - b
        for v in range(l):
            src = et if v % 2 == 0 else dt
            acc = 0.0
            for j in range(half):
                acc += ch[v, j] * src[j]
            total += abs(acc)
            if u == 0 and v == 0:
                f00 = abs(acc)
    return (total - f00) / (l * l - 1)


@njit(nogil=True, parallel=True, cache=True, fastmath=True)
def features_and_stats(src, rec, ch, n, s, l, feat_diff, row_sum, row_sq, mask):
    """Fill feat_diff[r, c] = |f(src) - f(rec)| and per-row residual sums; zero `mask`."""
    h, w = src.shape
    rows, cols = feat_diff.shape
    half = n // 2
    for r in prange(rows):
        e = np.empty((half, n), np.float32)
        d = np.empty((half, n), np.float32)
        t = np.empty((l, n), np.float32)
        et = np.empty(half, np.float32)
        dt = np.empty(half, np.float32)
        for c in range(cols):
            fs = _patch_feature(src, r * s, c * s, n, l, ch, e, d, t, et, dt)
            fr = _patch_feature(rec, r * s, c * s, n, l, ch, e, d, t, et, dt)
            feat_diff[r, c] = abs(fs - fr)
        # residual statistics and mask clearing for the band of image rows this iteration owns
        y_end = h if r == rows - 1 else (r + 1) * s
        for y in range(r * s, y_end):
            acc = 0.0
            acc2 = 0.0
            for x in range(w):
                g = abs(src[y, x] - rec[y, x])
                acc += g
                acc2 += g * g
                mask[y, x] = 0
            row_sum[y] = acc
            row_sq[y] = acc2


@njit(nogil=True, parallel=True, cache=True, fastmath=True)
def fuse(src, rec, marked, n, s, threshold, mask, row_hits):
    """Eq. 21 on marked patches only: mask = 1 where |src - rec| >= threshold.

    row_hits[r] counts the writes made for patch row r: all zero exactly when no pixel is a
    defect (overlapping patches, s < N, may write a pixel twice)."""
    rows, cols = marked.shape
    for r in prange(rows):
        local = 0
        for c in range(cols):
            if marked[r, c]:
                for y in range(r * s, r * s + n):
                    for x in range(c * s, c * s + n):
                        if abs(src[y, x] - rec[y, x]) >= threshold:
                            mask[y, x] = 1
                            local += 1
        row_hits[r] = local


def grid_shape(h: int, w: int, n: int, s: int) -> tuple[int, int]:
    """Rr = (H - N)/s + 1, Rc = (W - N)/s + 1 (eq. 20), floored."""
    if h < n or w < n:
        return 0, 0
    return (h - n) // s + 1, (w - n) // s + 1
