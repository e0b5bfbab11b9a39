"""Residual analysis: the one implementation shared by the station, evaluation and calibration.

make_detector(recipe.detect) returns a callable (src, rec) -> Detection, where src is the
preprocessed frame as the model saw it and rec the model output, both float32 (H, W).
Buffers are allocated once per frame shape and reused; the returned mask is valid until the next
call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..recipe import DctFusion, Detect, Probability, SquaredResidual
from .dct_kernel import dct_basis_half, features_and_stats, fuse, grid_shape
from .regions import Region, find_regions


@dataclass
class Detection:
    mask: np.ndarray            # uint8 (H, W), 1 = defect pixel
    score: float                # image-level anomaly score (method-specific units, higher = worse)
    regions: list[Region]       # 8-connected defect regions, largest first
    stats: dict = field(default_factory=dict)


class DctFusionDetector:
    """Seed 001 (eq. 17-22). score = the largest patch feature difference |f(src) - f(rec)|."""

    def __init__(self, p: DctFusion):
        self.p = p
        self.basis = dct_basis_half(p.patch, p.block)
        self._shape = None

    def _buffers(self, h, w):
        if self._shape != (h, w):
            rows, cols = grid_shape(h, w, self.p.patch, self.p.stride)
            self.feat_diff = np.zeros((rows, cols), np.float32)
            self.row_sum = np.zeros(h, np.float64)
            self.row_sq = np.zeros(h, np.float64)
            self.mask = np.zeros((h, w), np.uint8)
            self.row_hits = np.zeros(rows, np.int64)
            self._shape = (h, w)

    def analyse(self, src: np.ndarray, rec: np.ndarray):
        """The kernels alone: returns (mask, |df| per patch, mu, sigma, any_defect)."""
        p = self.p
        h, w = src.shape
        self._buffers(h, w)
        if self.feat_diff.size == 0:  # frame smaller than one patch: no region can be marked
            residual = np.abs(src - rec)
            return self.mask, self.feat_diff, float(residual.mean()), float(residual.std()), False
        features_and_stats(src, rec, self.basis, p.patch, p.stride, p.block,
                           self.feat_diff, self.row_sum, self.row_sq, self.mask)
        count = h * w
        mu = self.row_sum.sum() / count
        sigma = float(np.sqrt(max(self.row_sq.sum() / count - mu * mu, 0.0)))
        marked = self.feat_diff > p.epsilon
        any_defect = False
        if marked.any():
            fuse(src, rec, marked, p.patch, p.stride, np.float32(mu + p.gamma * sigma), self.mask, self.row_hits)
            any_defect = bool(self.row_hits.any())
        return self.mask, self.feat_diff, float(mu), sigma, any_defect

    def __call__(self, src: np.ndarray, rec: np.ndarray) -> Detection:
        mask, diff, mu, sigma, any_defect = self.analyse(src, rec)
        regions = []
        if any_defect:
            rows, cols = np.nonzero(diff > self.p.epsilon)
            s, n = self.p.stride, self.p.patch
            window = (rows.min() * s, rows.max() * s + n, cols.min() * s, cols.max() * s + n)
            regions = find_regions(mask, np.abs(src - rec), window)
        score = float(diff.max()) if diff.size else 0.0
        return Detection(mask, score, regions, {"mu": mu, "sigma": sigma,
                                                "threshold": mu + self.p.gamma * sigma,
                                                "marked_patches": int((diff > self.p.epsilon).sum())})


    def score_map(self, src: np.ndarray, rec: np.ndarray) -> np.ndarray:
        """Continuous per-pixel score for pixel AUROC: the residual weighted by its patch's evidence,
        |src - rec| * min(1, |df| / epsilon). On marked patches it is the residual itself, so a
        threshold of mu + gamma*sigma reproduces eq. 21 there; pixels outside every patch score 0."""
        p = self.p
        _, diff, _, _, _ = self.analyse(src, rec)
        h, w = src.shape
        weight = np.zeros((h, w), np.float32)
        gain = np.minimum(1.0, diff / p.epsilon) if p.epsilon > 0 else (diff > 0).astype(np.float32)
        for r in range(diff.shape[0]):  # overlapping patches keep the strongest evidence
            for c in range(diff.shape[1]):
                view = weight[r * p.stride:r * p.stride + p.patch, c * p.stride:c * p.stride + p.patch]
                np.maximum(view, gain[r, c], out=view)
        return np.abs(src - rec) * weight


class SquaredResidualDetector:
    """Seed 002: v = (src - rec)^2 (eq. 9), mean filter, threshold max(mean + k*std, floor)."""

    def __init__(self, p: SquaredResidual):
        self.p = p

    def score_map(self, src, rec) -> np.ndarray:
        """The mean-filtered squared residual: what the adaptive threshold cuts."""
        v = np.square(src - rec, dtype=np.float32)
        return cv2.blur(v, (self.p.kernel, self.p.kernel), borderType=cv2.BORDER_REFLECT)

    def __call__(self, src, rec) -> Detection:
        filtered = self.score_map(src, rec)
        mean, std = cv2.meanStdDev(filtered)
        threshold = max(float(mean[0, 0] + self.p.k * std[0, 0]), self.p.floor)
        mask = (filtered >= threshold).view(np.uint8) if threshold > 0 else np.zeros(filtered.shape, np.uint8)
        regions = find_regions(mask, filtered) if mask.any() else []
        return Detection(mask, float(filtered.max()), regions, {"threshold": threshold})


class ProbabilityDetector:
    """Seed 000 / perlin_seg: the model output is a defect probability map; the mask is the raw
    map's. The image score is the map's peak, or, with `top_share`, the mean of its highest
    pixels: the peak of a larger frame's good texture is higher by chance (the maximum of more
    pixels), a mean over a fixed share of them is not. `smooth` > 1 first applies a mean filter
    (DRAEM's image score), so one stray pixel scores less than a defect-sized blob. The regions
    come from the map blurred by `sigma` (their pixel threshold is calibrated on that map)."""

    def __init__(self, p: Probability):
        self.p = p
        self._smoothed = None
        self._blurred = None
        self._ranked = None  # the top share's scratch: partitioned in place, not allocated per frame

    def score_map(self, src, rec) -> np.ndarray:
        """The map the pixel threshold cuts: the raw one, or blurred by sigma (a scratch buffer
        reused across frames: copy it to keep it)."""
        if self.p.sigma <= 0:
            return rec
        if self._blurred is None or self._blurred.shape != rec.shape:
            self._blurred = np.empty_like(rec)
        return cv2.GaussianBlur(rec, (0, 0), self.p.sigma, dst=self._blurred, borderType=cv2.BORDER_REPLICATE)

    def image_score(self, rec: np.ndarray) -> float:
        m, k = rec, self.p.smooth
        if k > 1:
            if self._smoothed is None or self._smoothed.shape != rec.shape:
                self._smoothed = np.empty_like(rec)
            m = cv2.blur(rec, (k, k), dst=self._smoothed, borderType=cv2.BORDER_REPLICATE)
        if self.p.top_share <= 0:
            return float(m.max())
        n = max(1, round(m.size * self.p.top_share))
        if self._ranked is None or self._ranked.size != m.size:
            self._ranked = np.empty(m.size, m.dtype)
        self._ranked[:] = m.ravel()
        self._ranked.partition(m.size - n)
        return float(self._ranked[-n:].mean(dtype=np.float64))

    def __call__(self, src, rec) -> Detection:
        m = self.score_map(src, rec)
        mask = (m >= self.p.threshold).view(np.uint8)
        regions = find_regions(mask, m) if mask.any() else []
        return Detection(mask, self.image_score(rec), regions, {"threshold": self.p.threshold})


def make_detector(d: Detect):
    if d.method == "dct_fusion":
        return DctFusionDetector(d.dct_fusion)
    if d.method == "squared_residual":
        return SquaredResidualDetector(d.squared_residual)
    return ProbabilityDetector(d.probability)


__all__ = ["Detection", "Region", "make_detector", "DctFusionDetector", "SquaredResidualDetector",
           "ProbabilityDetector"]
