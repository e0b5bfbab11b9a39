"""Accuracy gate: does the converted (FP16 / INT8 Q/DQ) graph still inspect like the FP32 one?

Both graphs run under ONNX Runtime through the station's own code (edge.inspector.Inspector:
preprocessing, tiling, edge.detect, the decision) on held-out good images and on the same images
with seed 000 pseudo-defects painted in (exact masks). Reported: reconstruction error, residual
(score) map error, verdict agreement, and pixel AUROC of each graph with the drop in points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.backends.onnxruntime import OnnxRuntimeRunner
from edge.defects import pseudo_defect
from edge.evaluation import auroc, inspect_frame
from edge.images import read_image_or_fail as read_image
from edge.inspector import Inspector
from edge.recipe import load_recipe


@dataclass(frozen=True)
class Tolerance:
    max_auroc_drop: float = 0.5      # points of pixel AUROC (0.5 = 0.005)
    min_agreement: float = 0.99      # fraction of frames with the same verdict


def gate_cases(files: list[Path], seed: int = 0):
    """(name, frame, mask) for each held-out image as it is and with one pseudo-defect painted in."""
    for i, f in enumerate(files):
        frame = read_image(f)
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if gray.dtype != np.uint8:
            gray = (gray / max(1, int(gray.max())) * 255).astype(np.uint8)
        yield f"{f.name}", gray, np.zeros(gray.shape, np.uint8)
        painted, _ = pseudo_defect(gray.astype(np.float32) / 255, seed + i)
        painted = np.round(painted * 255).astype(np.uint8)
        yield f"{f.name}+defect", painted, (painted != gray).astype(np.uint8)


def run_gate(reference: Path, candidate: Path, files: list[Path], tol: Tolerance = Tolerance(), seed: int = 0,
             progress=None) -> dict:
    with OnnxRuntimeRunner(reference) as ref_runner, OnnxRuntimeRunner(candidate) as cand_runner:
        recipe = load_recipe(ref_runner.metadata, str(reference))
        pair = (Inspector(ref_runner, recipe, "gate", "build-engine"), Inspector(cand_runner, recipe, "gate", "build-engine"))
        return _compare(pair, files, tol, seed, progress)


def _compare(pair, files: list[Path], tol: Tolerance, seed: int, progress) -> dict:
    rec_max, rec_sum, map_max, agree = 0.0, 0.0, 0.0, 0
    maps: tuple[list, list] = ([], [])
    truth, disagreements = [], []
    cases = list(gate_cases(files, seed))
    for k, (name, frame, mask) in enumerate(cases):
        (r_rec, r_v, r_map), (c_rec, c_v, c_map) = (_inspect(ins, frame) for ins in pair)
        d = np.abs(r_rec - c_rec)
        rec_max, rec_sum = max(rec_max, float(d.max())), rec_sum + float(d.mean())
        map_max = max(map_max, float(np.abs(r_map - c_map).max()))
        if r_v == c_v:
            agree += 1
        else:
            disagreements.append(f"{name}: {r_v} -> {c_v}")
        if mask.shape != r_map.shape:
            mask = cv2.resize(mask, r_map.shape[::-1], interpolation=cv2.INTER_NEAREST)
        truth.append(mask.ravel())
        maps[0].append(r_map.ravel())
        maps[1].append(c_map.ravel())
        if progress:
            progress(k + 1, len(cases))
    n = len(cases)
    t = np.concatenate(truth)
    auc_r, auc_c = (auroc(np.concatenate(m), t) for m in maps)
    drop = (auc_r - auc_c) * 100
    agreement = agree / n
    passed = bool(drop <= tol.max_auroc_drop and agreement >= tol.min_agreement)
    return {"passed": passed, "frames": n, "good_images": len(files),
            "reconstruction_max_abs_error": rec_max, "reconstruction_mean_abs_error": rec_sum / n,
            "score_map_max_abs_error": map_max, "verdict_agreement": agreement,
            "pixel_auroc_reference": auc_r, "pixel_auroc_candidate": auc_c, "pixel_auroc_drop_points": drop,
            "tolerance": {"max_auroc_drop_points": tol.max_auroc_drop, "min_verdict_agreement": tol.min_agreement},
            "disagreements": disagreements[:10]}


def _inspect(ins: Inspector, frame: np.ndarray):
    """(reconstruction, verdict, score map) of one frame, as edge-eval measures it."""
    src, rec, verdict, _, _ = inspect_frame(ins, frame)
    return rec, verdict, ins.detector.score_map(src, rec).copy()


def format_report(r: dict, precision: str) -> str:
    tol = r["tolerance"]
    lines = [f"accuracy gate ({precision} vs fp32, ONNX Runtime, {r['good_images']} held-out good images "
             f"+ the same with synthetic defects = {r['frames']} frames):",
             f"  reconstruction  max |err| {r['reconstruction_max_abs_error']:.3g}  "
             f"mean |err| {r['reconstruction_mean_abs_error']:.3g}",
             f"  score map       max |err| {r['score_map_max_abs_error']:.3g}",
             f"  verdicts        {r['verdict_agreement'] * 100:.1f} % agree (need >= {tol['min_verdict_agreement'] * 100:g} %)",
             f"  pixel AUROC     fp32 {r['pixel_auroc_reference']:.4f}  {precision} {r['pixel_auroc_candidate']:.4f}  "
             f"drop {r['pixel_auroc_drop_points']:+.2f} points (allowed {tol['max_auroc_drop_points']:g})",
             f"  result          {'PASS' if r['passed'] else 'FAIL'}"]
    for d in r["disagreements"]:
        lines.append(f"    differs: {d}")
    return "\n".join(lines)
