"""Post hoc on trained runs (no retraining): does averaging the map over flipped copies of the
frame (test-time augmentation), or another image score than the map's peak, rank parts better?
Each model runs through the station's Inspector (its tiling, runner and detector); a flipped
frame's map is flipped back before averaging. Give it a one-pass export (`reexport.py ... --set
mirror=none`): today's default export mirrors inside the graph already.

    python3 flip_scores.py runs/rejects_k10_s0 --data runs/rejects_k10_s0/data
    python3 flip_scores.py runs/default --data ../../../shared/data/magnetic_tile

Prints and writes <run>/flip_scores.json: image AUROC (overall and per type) and pixel AUROC
(every 4th pixel) for each map (MAPS: the frame's own, and means with flipped copies of the whole
frame or of each tile) and each image score (peak, mean of the top k pixels or the top 0.1 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.detect import ProbabilityDetector
from edge.evaluation import auroc
from edge.images import load_mask, read_image_or_fail, test_items
from edge.recipe import Probability
from train.evaluate import open_inspector

AXES = [(), (1,), (0,), (0, 1)]  # of the map: none, left-right, upside down, both (a half turn)
# maps averaged: whole frames flipped (f*) or each tile flipped inside the model call (t*)
MAPS = {"id": ["f"], "f_v": ["f", "f0"], "f_hv": ["f", "f1", "f0", "f01"],
        "t_h": ["f", "t1"], "t_v": ["f", "t0"], "t_r": ["f", "t01"], "t_hv": ["f", "t1", "t0", "t01"]}

TOP_SHARE = ProbabilityDetector(Probability(top_share=0.001))


def image_scores(m: np.ndarray) -> dict[str, float]:
    flat = np.sort(m.ravel())
    out = {"peak": float(flat[-1])}
    for k in (16, 64, 256):
        out[f"top{k}"] = float(flat[-k:].mean())
    out["top0.1%"] = TOP_SHARE.image_score(m)  # the station's own image score
    return out


def tile_flipped(infer, axes):
    """The runner's infer with each tile of the batch (N, C, H, W) flipped and its map flipped back."""
    ax = tuple(a + 2 for a in axes)
    return lambda batch: np.flip(infer(np.ascontiguousarray(np.flip(batch, ax))), ax).copy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args(argv)
    ins, runner = open_inspector(args.run / "model.onnx")
    scores: dict[str, list[float]] = {}
    pix: dict[str, list[np.ndarray]] = {k: [] for k in MAPS}
    infer = runner.infer
    truths, kinds = [], []
    try:
        for it in test_items(args.data):
            x = ins.pre.to_model_space(read_image_or_fail(it.path))
            src = x if x.ndim == 2 else x[0]
            maps = {}
            for axes in AXES:
                tag = "".join(map(str, axes))
                xf = np.ascontiguousarray(np.flip(x, tuple(a + x.ndim - 2 for a in axes))) if axes else x
                sf = xf if xf.ndim == 2 else xf[0]
                m = ins.detector.score_map(sf, ins.reconstruct(xf)).copy()
                maps["f" + tag] = np.flip(m, axes) if axes else m
                if axes:
                    runner.infer = tile_flipped(infer, axes)
                    maps["t" + tag] = ins.detector.score_map(src, ins.reconstruct(x)).copy()
                    runner.infer = infer
            for name, group in MAPS.items():
                m = np.mean([maps[a] for a in group], axis=0)
                for s, v in image_scores(m).items():
                    scores.setdefault(f"{name}/{s}", []).append(v)
                pix[name].append(m.ravel()[::4])
            truths.append(load_mask(it.mask, src.shape).ravel()[::4])
            kinds.append(it.kind)
    finally:
        runner.close()
    k = np.array(kinds)
    labels = k != "good"
    truth = np.concatenate(truths)
    out: dict = {"runner": runner.name, "pixel_auroc": {n: auroc(np.concatenate(v), truth) for n, v in pix.items()}}
    for name, v in scores.items():
        s = np.array(v)
        out[name] = {"image_auroc": auroc(s, labels),
                     **{t: auroc(s[(k == t) | ~labels], labels[(k == t) | ~labels]) for t in sorted(set(kinds) - {"good"})}}
    print(json.dumps(out, indent=1))
    (args.run / "flip_scores.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
