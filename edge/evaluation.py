"""The torch-free half of evaluation, shared by edge-eval (train/) and build-engine's accuracy
gate (build_engines/), which must not depend on the training package: ranking metrics and one
frame through the station's own Inspector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

from .images import read_image_or_fail as read_image
from .inspector import Inspector


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); nan without both classes."""
    labels = labels.astype(bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def aupro(score_maps: list[np.ndarray], truths: list[np.ndarray], fpr_limit: float = 0.3, steps: int = 300) -> float:
    """Area under the per-region-overlap curve up to `fpr_limit` false-positive rate, divided by
    fpr_limit (the MVTec AD protocol, Bergmann et al. 2021): for each threshold, PRO is the mean over
    all ground-truth regions (8-connected components, each counted once however large) of the share
    of its pixels at or above the threshold; FPR is the share of defect-free pixels at or above it.
    nan without regions."""
    regions, negatives = [], []
    for sm, truth in zip(score_maps, truths):
        negatives.append(sm[truth == 0].ravel())
        if truth.any():
            count, labels = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
            for k in range(1, count):
                regions.append(np.sort(sm[labels == k]))
    if not regions:
        return float("nan")
    neg = np.sort(np.concatenate(negatives))
    if neg.size == 0:
        return float("nan")
    # thresholds: negatives' values from the largest down past fpr_limit; a pixel counts as flagged
    # when its score is above the threshold, so the largest negative gives a false-positive rate of 0
    ranks = np.unique(np.round(np.linspace(0, min(1.0, fpr_limit * 1.05), steps + 1) * (neg.size - 1)))
    thresholds = neg[neg.size - 1 - ranks.astype(np.int64)]
    fpr = 1 - np.searchsorted(neg, thresholds, "right") / neg.size
    pro = np.mean([1 - np.searchsorted(r, thresholds, "right") / r.size for r in regions], axis=0)
    inside = fpr <= fpr_limit
    f, p = fpr[inside], pro[inside]
    if f[-1] < fpr_limit and (~inside).any():  # the curve up to exactly the limit, interpolated
        j = np.argmax(~inside)
        f2, p2 = fpr[j], pro[j]
        p = np.append(p, p[-1] + (p2 - p[-1]) * (fpr_limit - f[-1]) / (f2 - f[-1]))
        f = np.append(f, fpr_limit)
    elif f[-1] < fpr_limit:
        f, p = np.append(f, fpr_limit), np.append(p, p[-1])
    return float(np.sum(np.diff(f) * (p[1:] + p[:-1]) / 2) / fpr_limit)


def roc_points(scores: np.ndarray, labels: np.ndarray, points: int = 200):
    thresholds = np.unique(np.quantile(scores, np.linspace(0, 1, points)))[::-1]
    labels = labels.astype(bool)
    tpr = [(scores[labels] >= t).mean() for t in thresholds]
    fpr = [(scores[~labels] >= t).mean() for t in thresholds]
    return [0.0] + fpr + [1.0], [0.0] + tpr + [1.0]


def detection_at_far(scores: np.ndarray, labels: np.ndarray, far: float = 0.05) -> float:
    """The share of defective images scored above the threshold that at most `far` of the good
    images exceed: the ROC's detection rate at that false-alarm rate on these very images, which
    compares how two models rank parts at a station's operating point, calibration aside."""
    labels = labels.astype(bool)
    good = np.sort(scores[~labels])[::-1]
    if not len(good) or not labels.any():
        return float("nan")
    threshold = good[min(len(good) - 1, int(np.floor(far * len(good))))]
    return float((scores[labels] > threshold).mean())


def inspect_file(ins: Inspector, path: Path):
    return inspect_frame(ins, read_image(path))


def inspect_frame(ins: Inspector, img: np.ndarray):
    """One frame through the station's Inspector: (model-space source, reconstruction, verdict,
    score, detection); the detection's mask is the detector's until the next call."""
    x = ins.pre.to_model_space(img)
    rec = ins.reconstruct(x)
    a = ins.analyse(x, rec, img.shape[:2])
    src = x if x.ndim == 2 else x[0]
    return src, rec, a.verdict, a.score, a.detection
