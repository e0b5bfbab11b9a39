"""edge-eval and threshold calibration. Both run the model through the station's own code
(edge.inspector.Inspector: preprocessing, tiling, ONNX Runtime, edge.detect, the decision), so the
numbers are the station's. No torch here.

Metrics: image AUROC (image score), pixel AUROC (the detector's continuous score map), AUPRO
(per-region overlap up to 30 % false-positive rate, the MVTec AD protocol), pixel
precision/recall/F1 of the station's mask at the calibrated thresholds, DR / FAR / mIoU (seed 000):
DR = defective images judged NG, FAR = good images judged NG (both at the calibrated threshold),
mIoU = mean IoU of predicted and true masks over defective images; DR at FAR 5 % = the defective
images above the score that 5 % of these good images exceed (the ROC at a station's operating
point, calibration aside). Each overall and per defect type (that type's images with the good
ones for the AUROCs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.backends import open_runner
from edge.evaluation import (  # noqa: F401  (re-exported)
    aupro,
    auroc,
    detection_at_far,
    inspect_file,
    inspect_frame,
    roc_points,
)
from edge.images import load_mask, read_image_or_fail, test_items
from edge.inspector import Inspector
from edge.recipe import load_recipe
from edge.recipe import read_recipe as read_model_recipe
from edge.schema import to_dict
from edge.verdict import Verdict


@dataclass
class Result:
    kind: str
    score: float
    verdict: str
    pred: np.ndarray      # binary mask at the frame's resolution
    score_map: np.ndarray  # likewise (brought back from the model's scale where it differs)
    truth: np.ndarray
    image: np.ndarray
    rec: np.ndarray
    name: str = ""        # the image file's name


def open_inspector(model: Path, recipe_overrides: dict | None = None, backend: str = "auto",
                   precision: str = "auto") -> tuple[Inspector, object]:
    runner = open_runner(model, backend, precision=precision).open()
    try:
        recipe = load_recipe(runner.metadata, str(model), recipe_overrides, "recipe overrides")
    except BaseException:
        runner.close()
        raise
    return Inspector(runner, recipe, "eval", "eval"), runner


def score_threshold(scores: np.ndarray, target_far: float, bounded: bool) -> float:
    """The image-score threshold for `target_far` on unseen good parts, from held-out good scores:
    the larger of the empirical quantile and a prediction bound on the upper tail. The bound works
    on the scores' logit (probabilities, `bounded`) or log: median + t(1 - far, k - 1) * s *
    sqrt(1 + 1/n), with s the root-mean-square distance above the median of the k scores at or
    above it (the upper half alone: good parts' scores are skewed and bimodal, and a normal fit
    to all of them overstates the tail). With few held-out images the empirical quantile is the
    sample maximum or near it and scatters widely; the bound allows for how few they are.
    Measured on the magnetic tiles (docs/ACCURACY.md, calibration_check.py)."""
    from scipy.stats import t as student_t

    empirical = float(np.quantile(scores, 1 - target_far, method="higher"))
    n = len(scores)
    if n < 4:
        return empirical
    eps = 1e-6
    clipped = np.clip(scores, eps, 1 - eps) if bounded else np.maximum(scores, eps)
    z = np.log(clipped / (1 - clipped)) if bounded else np.log(clipped)
    median = float(np.median(z))
    upper = z[z >= median] - median
    spread = float(np.sqrt(np.mean(upper ** 2)))
    bound = median + student_t.ppf(1 - target_far, max(1, len(upper) - 1)) * spread * np.sqrt(1 + 1 / n)
    parametric = float(1 / (1 + np.exp(-bound))) if bounded else float(np.exp(bound))
    return max(empirical, parametric)


def rejects_caught(model: Path, reject_files: list[Path]) -> float:
    """Share of a run's own rejects the calibrated model judges NG. They were training data, so
    this is no accuracy figure, only a floor: a model that misses the defects it was shown
    learned nothing usable from them (edge-train warns)."""
    ins, runner = open_inspector(model)
    try:
        return float(np.mean([inspect_file(ins, f)[2] is Verdict.NG for f in reject_files]))
    finally:
        runner.close()


def calibrate_coarse_weight(model: Path, good_files: list[Path], target_far: float) -> float:
    """A two-scale model's coarse weight: the ratio of the image thresholds that each scale's map
    alone would be calibrated to on the held-out good images, so that either scale's map reaches
    the fused threshold as often on good parts (each scale's score in units of its own threshold,
    as docs/ACCURACY.md's "The working scale" fused two models)."""
    from edge.inspector import run_tiles
    ins, runner = open_inspector(model, {"preprocess": {"coarse_weight": 1.0}})
    scores: list[list[float]] = [[], []]
    try:
        for f in good_files:
            x = ins.pre.to_model_space(read_image_or_fail(f))
            maps = ins.pre.scale_maps(run_tiles(runner, ins.pre.tiles(x)))
            src = x if x.ndim == 2 else x[0]
            for kept, m in zip(scores, maps):
                kept.append(ins.detector(src, m).score)
    finally:
        runner.close()
    native, coarse = (score_threshold(np.array(s), target_far, bounded=True) for s in scores)
    return float(np.clip(native / max(coarse, 1e-6), 1e-3, 1e3))


def calibrate(model: Path, good_files: list[Path], target_far: float, pixel_far: float = 0.01) -> dict:
    """Thresholds from held-out good images: the image score threshold for `target_far`
    (score_threshold above), and the method's pixel threshold (dct_fusion epsilon at the 99.9th
    percentile of good patch differences; squared_residual floor at the image threshold). A
    probability map's pixel threshold is the (1 - pixel_far) quantile of the good images' pixels,
    capped at the image threshold: a good part has about pixel_far of its pixels marked, and a
    part judged NG always shows where (its peak is at or above the image threshold). A fixed 0.5
    marked nothing on parts whose image threshold fell below it, and cutting at the image
    threshold itself (0.9999 on saturated maps) kept a few pixels of each defect. Returns the
    recipe to store."""
    recipe = to_dict(read_model_recipe(model))
    method = recipe["detect"]["method"]
    overrides = None
    if recipe["preprocess"].get("coarse_scale") is not None:
        recipe["preprocess"]["coarse_weight"] = calibrate_coarse_weight(model, good_files, target_far)
        overrides = {"preprocess": {"coarse_weight": recipe["preprocess"]["coarse_weight"]}}
    ins, runner = open_inspector(model, overrides)
    ran_on = runner.name
    scores, diffs, pixels = [], [], []
    rng = np.random.default_rng(0)
    try:
        for f in good_files:
            src, rec, _, score, _ = inspect_file(ins, f)
            scores.append(score)
            if method == "dct_fusion":
                diffs.append(ins.detector.analyse(src, rec)[1].ravel().copy())
            elif method == "probability":  # a bounded sample of each image's pixels, of the map regions cut
                flat = ins.detector.score_map(src, rec).ravel()
                pixels.append(flat[rng.choice(flat.size, min(flat.size, 50_000), replace=False)].copy())
    finally:
        runner.close()
    scores = np.array(scores)
    threshold = score_threshold(scores, target_far, bounded=method == "probability")
    if method == "dct_fusion":
        recipe["detect"]["dct_fusion"]["epsilon"] = float(np.quantile(np.concatenate(diffs), 0.999))
    elif method == "squared_residual":
        recipe["detect"]["squared_residual"]["floor"] = threshold
    elif method == "probability":
        recipe["detect"]["probability"]["threshold"] = min(threshold, float(np.quantile(np.concatenate(pixels),
                                                                                        1 - pixel_far)))
    recipe["decision"].update(rule="score", score_threshold=threshold)
    recipe.setdefault("training", {})["calibration"] = (
        f"{len(good_files)} held-out good images on {ran_on}, target false-alarm rate {target_far}"
        + (f", coarse weight {recipe['preprocess']['coarse_weight']:.4g}" if overrides else "")
        + (f", pixel threshold for {pixel_far} of a good part's pixels" if method == "probability" else "") + ", "
        f"measured {float((scores >= threshold).mean()):.3f}")
    return recipe


def run_eval(model: Path, data: Path, limit: int = 0, overrides: dict | None = None, backend: str = "auto",
             precision: str = "auto", ran_on: dict | None = None) -> list[Result]:
    """ran_on, when given, receives the runner's name (with its precision where it has a choice)."""
    ins, runner = open_inspector(model, overrides, backend, precision)
    if ran_on is not None:
        ran_on["runner"] = runner.name
    results = []
    try:
        items = test_items(data)
        if limit:
            by_kind: dict[str, list] = {}
            for it in items:
                by_kind.setdefault(it.kind, []).append(it)
            items = [it for group in by_kind.values() for it in group[:limit]]
        for it in items:
            frame = read_image_or_fail(it.path)
            src, rec, verdict, score, det = inspect_frame(ins, frame)
            hw = frame.shape[:2]
            results.append(Result(it.kind, score, verdict, at_frame(det.mask, hw, cv2.INTER_NEAREST),
                                  at_frame(ins.detector.score_map(src, rec), hw, cv2.INTER_LINEAR),
                                  load_mask(it.mask, hw), src.copy(), rec, it.path.name))
    finally:
        runner.close()
    return results


def at_frame(a: np.ndarray, hw: tuple[int, int], interpolation: int) -> np.ndarray:
    """A copy of a model-space map or mask at the frame's shape `hw`: pixel metrics are taken where
    the operator sees the defect, whatever scale the model worked at, so models of different
    working scales compare (a detector's arrays are reused by its next call)."""
    if a.shape == hw:
        return a.copy()
    return cv2.resize(a, (hw[1], hw[0]), interpolation=interpolation)


def metrics(results: list[Result]) -> dict:
    def block(rs: list[Result]) -> dict:
        labels = np.array([r.kind != "good" for r in rs])
        scores = np.array([r.score for r in rs])
        pix_scores = np.concatenate([r.score_map.ravel() for r in rs])
        pix_truth = np.concatenate([r.truth.ravel() for r in rs])
        pred = np.concatenate([r.pred.ravel() for r in rs]).astype(bool)
        truth = pix_truth.astype(bool)
        tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        ng = np.array([r.verdict == "NG" for r in rs])
        ious = [((r.pred > 0) & (r.truth > 0)).sum() / max(1, ((r.pred > 0) | (r.truth > 0)).sum())
                for r in rs if r.kind != "good"]
        pixel = {"pixel_auroc": auroc(pix_scores, pix_truth),
                 "aupro": aupro([r.score_map for r in rs], [r.truth for r in rs]),
                 "pixel_precision": float(precision), "pixel_recall": float(recall),
                 "pixel_f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0}
        if not truth.any():  # no ground-truth masks: pixel metrics are absent, not NaN or 0
            pixel = {k: None for k in pixel}
        return {"images": len(rs), "defective": int(labels.sum()),
                "image_auroc": auroc(scores, labels), **pixel,
                "dr": float(ng[labels].mean()) if labels.any() else float("nan"),
                "far": float(ng[~labels].mean()) if (~labels).any() else float("nan"),
                "dr_at_far5": detection_at_far(scores, labels, 0.05),
                "miou": float(np.mean(ious)) if ious else float("nan")}

    good = [r for r in results if r.kind == "good"]
    kinds = sorted({r.kind for r in results} - {"good"})
    out = {"overall": block(results)}
    for k in kinds:
        out[k] = block(good + [r for r in results if r.kind == k])
    return out


def _tile(a: np.ndarray, size: int = 128, normalise: bool = False) -> np.ndarray:
    a = a.astype(np.float32)
    if normalise:
        a = a / (float(np.percentile(a, 99.5)) or 1.0)
    t = cv2.resize(np.clip(a * 255, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(t, cv2.COLOR_GRAY2BGR)


def overlay_grid(results: list[Result], path: Path, per_kind: int = 2):
    """Rows of input | reconstruction | residual | predicted mask | true mask, a few per type."""
    rows = []
    header = np.full((20, 128 * 5, 3), 255, np.uint8)
    for i, name in enumerate(("input", "reconstruction", "residual", "predicted", "truth")):
        cv2.putText(header, name, (i * 128 + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    rows.append(header)
    for kind in sorted({r.kind for r in results}):
        for r in [r for r in results if r.kind == kind][:per_kind]:
            row = np.hstack([_tile(r.image), _tile(r.rec), _tile(np.abs(r.image - r.rec), normalise=True),
                             _tile(r.pred), _tile(r.truth)])
            cv2.putText(row, f"{kind} {r.verdict}", (4, 124), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
            rows.append(row)
    cv2.imwrite(str(path), np.vstack(rows))


def roc_figure(results: list[Result], path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.array([r.kind != "good" for r in results])
    scores = np.array([r.score for r in results])
    rng = np.random.default_rng(0)
    pix_s = np.concatenate([r.score_map.ravel() for r in results])
    pix_t = np.concatenate([r.truth.ravel() for r in results])
    pick = rng.choice(len(pix_s), min(len(pix_s), 2_000_000), replace=False)
    curves = [(scores, labels, "image")] + ([(pix_s[pick], pix_t[pick], "pixel")] if pix_t.any() else [])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, (s, t, name) in zip(axes, curves):
        if t.all() or not t.any():  # one class only: no curve to draw
            continue
        fpr, tpr = roc_points(s, t)
        ax.plot(fpr, tpr, label=f"AUROC {auroc(s, t):.3f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{title}: {name}")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _no_nan(obj):
    """JSON has no NaN: a metric that cannot be computed (one class missing) is null."""
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def evaluate(model: Path, data: Path, out: Path, limit: int = 0, overrides: dict | None = None,
             backend: str = "auto", precision: str = "auto") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    ran_on: dict = {}
    results = run_eval(model, data, limit, overrides, backend, precision, ran_on)
    m = metrics(results)
    m["overall"]["runner"] = ran_on["runner"]
    (out / "metrics.json").write_text(json.dumps(_no_nan(m), indent=2, allow_nan=False))
    roc_figure(results, out / "roc.png", model.stem)
    overlay_grid(results, out / "overlays.png")
    from .report import write_report
    recipe = read_model_recipe(model)
    method = (overrides or {}).get("detect", {}).get("method") or recipe.detect.method
    write_report(results, _no_nan(m), out / "report.html", f"edge-eval: {model.name} on {data.name}",
                 probability=method == "probability", threshold=None if overrides else recipe.decision.score_threshold)
    return m
