"""Pixel AUROC and AUPRO of the probability map read at several scales: the raw map blurred by each
sigma, each blurred map divided by a high quantile of the held-out good images' blurred maps
(what that scale shows on good texture), and the largest of those ratios kept per pixel. A thin
defect stands out at the fine scale, a large faint region at the coarse one, where good texture's
stray specks have averaged away. Post hoc, on one model's maps (docs/ACCURACY.md).

    python3 scale_max.py runs/default/model.onnx [--data DIR] [--sigmas 2 8] [--quantile 0.99]
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.detect import ProbabilityDetector
from edge.images import good_images, split_holdout
from edge.recipe import Probability
from train.evaluate import inspect_file, metrics, open_inspector, run_eval

DATA = Path(__file__).parent / "../../../shared/data/magnetic_tile"


def blur(m: np.ndarray, s: float) -> np.ndarray:
    """The map blurred as the station's detector blurs it (detect.probability.sigma)."""
    return ProbabilityDetector(Probability(sigma=s)).score_map(None, m).copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[2, 8])
    ap.add_argument("--quantile", type=float, nargs="+", default=[0.99])
    ap.add_argument("--holdout", type=float, default=0.1, help="train.yaml's holdout (edge-train's default)")
    a = ap.parse_args()
    overrides = {"detect": {"probability": {"sigma": 0}}}
    raw = [replace(r, image=None, rec=None) for r in run_eval(a.model, a.data, overrides=overrides)]
    ins, runner = open_inspector(a.model, overrides)
    try:  # the held-out good images' raw maps: what each scale shows on good texture
        held = [ins.detector.score_map(*inspect_file(ins, f)[:2]).copy()
                for f in split_holdout(good_images(a.data), a.holdout)[1]]
    finally:
        runner.close()
    print(f"{len(held)} held-out good images; image AUROC {metrics(raw)['overall']['image_auroc']:.3f}")
    kinds = None
    for s in a.sigmas:
        m = metrics([replace(r, score_map=blur(r.score_map, s)) for r in raw])
        kinds = kinds or [k for k in m if k != "overall"]
        print(f"sigma {s:g} alone: " + " | ".join(f"{k} {m[k]['pixel_auroc']:.3f} / {m[k]['aupro']:.3f}"
                                                   for k in ["overall"] + kinds), flush=True)
    for q in a.quantile:
        norms = [float(np.quantile(np.concatenate([blur(h, s).ravel() for h in held]), q)) for s in a.sigmas]
        fused = [replace(r, score_map=np.max([blur(r.score_map, s) / n for s, n in zip(a.sigmas, norms)], axis=0))
                 for r in raw]
        m = metrics(fused)
        print(f"max over sigmas {a.sigmas}, each / its good quantile {q} ({', '.join(f'{n:.4f}' for n in norms)}): "
              + " | ".join(f"{k} {m[k]['pixel_auroc']:.3f} / {m[k]['aupro']:.3f}" for k in ["overall"] + kinds),
              flush=True)


if __name__ == "__main__":
    main()
