"""Seed 001 detection (eq. 17-22): fused Numba kernel vs NumPy reference vs a straightforward pipeline.

    python -m bench.bench_detect [--quick]
    python -m bench.bench_detect --probability   # perlin_seg's detection: regions from the raw or the blurred map

"straightforward" is what a careful engineer writes without a custom kernel: patches gathered with
a reshape, the full N x N DCT as batched matrix products (C @ P @ C.T, BLAS), then the L x L
block, and cv2.absdiff / meanStdDev / compare for the residual and fusion. All three compute the
same mask; the kernel is also checked against it here. Times are medians, run side by side.
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np

from bench.common import machine, median_time, save
from edge.demo import texture
from edge.detect import DctFusionDetector, ProbabilityDetector
from edge.recipe import DctFusion, Probability
from testkit.dct_reference import dct_fusion_reference

SIZES = [(512, 512), (1024, 1024), (2048, 2448)]


def dct_matrix(n: int) -> np.ndarray:
    u = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.where(u == 0, math.sqrt(1 / n), math.sqrt(2 / n))
    return (c * np.cos((i + 0.5) * np.pi * u / n)).astype(np.float32)


def straightforward(src, rec, n=32, s=32, l=8, eps=0.05, gamma=3.0, c=None):
    """Non-overlapping patches (s == N) as the paper's defaults; vectorised NumPy + OpenCV."""
    h, w = src.shape
    rows, cols = h // n, w // n
    c = dct_matrix(n) if c is None else c

    def features(img):
        p = img[:rows * n, :cols * n].reshape(rows, n, cols, n).transpose(0, 2, 1, 3)
        f = np.abs(c @ p @ c.T)[..., :l, :l]
        return (f.sum(axis=(-1, -2)) - f[..., 0, 0]) / (l * l - 1)

    marked = np.abs(features(src) - features(rec)) > eps
    residual = cv2.absdiff(src, rec)
    mean, std = cv2.meanStdDev(residual)
    m = np.zeros((h, w), np.uint8)
    m[:rows * n, :cols * n] = np.repeat(np.repeat(marked, n, 0), n, 1)
    return (m & (residual >= mean[0, 0] + gamma * std[0, 0])).astype(np.uint8)


def frame_pair(h, w, seed=0):
    src = texture(seed, max(h, w))[:h, :w].astype(np.float32).copy()
    rec = cv2.GaussianBlur(src, (0, 0), 1.5)
    src[h // 3:h // 3 + 9, w // 2:w // 2 + 9] -= 0.4
    return src, rec


def probability(repeat: int):
    """The probability detector per frame (threshold, regions, the mean of the top 0.1 %) with the
    regions cut from the raw map (sigma 0) and from the map blurred by 2 px, side by side."""
    rows = []
    print(f"machine: {machine()}")
    for h, w in SIZES[:2]:
        rng = np.random.default_rng(0)
        m = rng.beta(2, 30, (h, w)).astype(np.float32)
        m[h // 3:h // 3 + 20, w // 2:w // 2 + 20] = 0.9  # one defect
        t = {}
        for sigma in (0.0, 2.0):
            det = ProbabilityDetector(Probability(threshold=0.5, top_share=0.001, sigma=sigma))
            t[sigma] = median_time(lambda: det(m, m), repeat * 4)  # noqa: B023
        rows.append({"height": h, "width": w, "raw_ms": t[0.0] * 1e3, "blurred_ms": t[2.0] * 1e3})
        print(f"{h:>5}x{w:<5} raw map {t[0.0] * 1e3:.3f} ms, blurred by 2 px {t[2.0] * 1e3:.3f} ms "
              f"(+{(t[2.0] - t[0.0]) * 1e3:.3f} ms)")
    save("detect_probability", {"rows": rows, "repeat": repeat * 4})


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    ap.add_argument("--probability", action="store_true", help="the probability detector, raw vs blurred map")
    args = ap.parse_args(argv)
    repeat = 5 if args.quick else 50
    if args.probability:
        return probability(repeat)
    p = DctFusion(epsilon=0.02)
    c = dct_matrix(32)
    rows = []
    print(f"machine: {machine()}")
    print(f"{'size':>11} {'fused kernel':>13} {'+regions':>10} {'straightfwd':>12} {'reference':>11} "
          f"{'vs straightfwd':>15} {'vs reference':>13}")
    for h, w in SIZES:
        src, rec = frame_pair(h, w)
        det = DctFusionDetector(p)
        mask = det.analyse(src, rec)[0].copy()
        ref_mask = dct_fusion_reference(src, rec, epsilon=0.02)[0]
        sf_mask = straightforward(src, rec, eps=0.02, c=c)
        assert np.array_equal(mask, ref_mask) and np.array_equal(mask, sf_mask), "implementations disagree"
        # each lambda is timed and dropped within this iteration, so the loop variables it reads are the current ones
        t_kernel = median_time(lambda: det.analyse(src, rec), repeat * 4)  # noqa: B023
        t_full = median_time(lambda: det(src, rec), repeat * 2)  # noqa: B023
        t_sf = median_time(lambda: straightforward(src, rec, eps=0.02, c=c), repeat)  # noqa: B023
        t_ref = median_time(lambda: dct_fusion_reference(src, rec, epsilon=0.02), max(3, repeat // 10), warmup=1)  # noqa: B023
        rows.append({"height": h, "width": w, "fused_ms": t_kernel * 1e3, "fused_with_regions_ms": t_full * 1e3,
                     "straightforward_ms": t_sf * 1e3, "reference_ms": t_ref * 1e3,
                     "speedup_vs_straightforward": t_sf / t_kernel, "speedup_vs_reference": t_ref / t_kernel})
        r = rows[-1]
        print(f"{h:>5}x{w:<5} {r['fused_ms']:>10.3f} ms {r['fused_with_regions_ms']:>7.3f} ms "
              f"{r['straightforward_ms']:>9.3f} ms {r['reference_ms']:>8.1f} ms "
              f"{r['speedup_vs_straightforward']:>14.1f}x {r['speedup_vs_reference']:>12.0f}x")
    save("detect", {"rows": rows, "repeat": repeat})


if __name__ == "__main__":
    main()
