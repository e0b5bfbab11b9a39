"""Plain NumPy/SciPy reference of seed 001's analysis, written for clarity, not speed.

It exists only so tests can check the fused Numba kernel against an independent implementation
(a full scipy DCT per patch, then the L x L block).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dctn


def dct_feature(patch: np.ndarray, l: int) -> float:
    """Eq. 19: mean |F(u, v)| over the L x L block without F(0, 0)."""
    amp = np.abs(dctn(patch.astype(np.float64), type=2, norm="ortho"))[:l, :l]
    return (amp.sum() - amp[0, 0]) / (l * l - 1)


def dct_fusion_reference(src, rec, n=32, s=32, l=8, epsilon=0.05, gamma=3.0):
    """Returns (defect mask uint8, |f(src) - f(rec)| per patch, mu, sigma)."""
    src = src.astype(np.float64)
    rec = rec.astype(np.float64)
    h, w = src.shape
    rows = (h - n) // s + 1 if h >= n else 0
    cols = (w - n) // s + 1 if w >= n else 0
    residual = np.abs(src - rec)                       # eq. 22
    mu, sigma = residual.mean(), residual.std()
    diff = np.zeros((rows, cols))
    m = np.zeros((h, w), bool)
    for r in range(rows):
        for c in range(cols):
            ps = src[r * s:r * s + n, c * s:c * s + n]
            pr = rec[r * s:r * s + n, c * s:c * s + n]
            diff[r, c] = abs(dct_feature(ps, l) - dct_feature(pr, l))
            if diff[r, c] > epsilon:                   # eq. 20
                m[r * s:r * s + n, c * s:c * s + n] = True
    mask = m & (residual >= mu + gamma * sigma)        # eq. 21
    return mask.astype(np.uint8), diff, mu, sigma
