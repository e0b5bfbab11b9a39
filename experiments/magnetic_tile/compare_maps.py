"""Compare score maps on the magnetic tile test set (docs/ACCURACY.md, third session): per model
and, given several, for the mean of their maps (an ensemble); image AUROC by each image-score
aggregation (the station uses the maximum) and pixel AUROC. Runs edge-eval's own run_eval.

    python3 compare_maps.py runs/unet_soft5/model.onnx
    python3 compare_maps.py runs/unet_tuned/model.onnx runs/unet_tuned_s1/model.onnx
"""

import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

from train.evaluate import auroc, run_eval

DATA = Path(__file__).resolve().parents[3] / "shared/data/magnetic_tile"
AGGREGATIONS = {
    "max": lambda p: p.max(),
    "top50_mean": lambda p: np.sort(p.ravel())[-50:].mean(),
    "top200_mean": lambda p: np.sort(p.ravel())[-200:].mean(),
    "blur1.5_max": lambda p: cv2.GaussianBlur(p, (0, 0), 1.5).max(),
    "blur3_max": lambda p: cv2.GaussianBlur(p, (0, 0), 3).max(),
    "area_0.5": lambda p: float((p > 0.5).sum()),
}


def main(models: list[str]):
    runs = {Path(m).parent.name: run_eval(Path(m), DATA) for m in models}
    if len(runs) > 1:
        per_image = zip(*runs.values())
        runs["mean of maps"] = [dataclasses.replace(rs[0], score_map=np.mean([r.score_map for r in rs], axis=0))
                                for rs in per_image]
    for name, results in runs.items():
        kinds = np.array([r.kind for r in results])
        labels = kinds != "good"
        pixel = auroc(np.concatenate([r.score_map.ravel() for r in results]),
                      np.concatenate([r.truth.ravel() for r in results]))
        print(f"{name}: pixel AUROC {pixel:.3f}")
        for k, fn in AGGREGATIONS.items():
            s = np.array([float(fn(r.score_map)) for r in results])
            per = {t: auroc(s[(kinds == t) | ~labels], labels[(kinds == t) | ~labels]) for t in sorted(set(kinds) - {"good"})}
            print(f"  {k:12s} image AUROC {auroc(s, labels):.3f}  " + "  ".join(f"{t} {v:.3f}" for t, v in per.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
