"""Compare image-score aggregations of a U-Net's probability maps on the magnetic tile test set
(docs/ACCURACY.md, third session). The station uses the map's maximum; this shows what others give.

    python3 train/configs/magnetic_tile/score_aggregations.py runs/unet_soft5/model.onnx
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from train.evaluate import auroc, inspect_file, open_inspector

DATA = Path(__file__).resolve().parents[4] / "shared/data/magnetic_tile"
AGGREGATIONS = {
    "max": lambda p: p.max(),
    "top50_mean": lambda p: np.sort(p.ravel())[-50:].mean(),
    "top200_mean": lambda p: np.sort(p.ravel())[-200:].mean(),
    "blur1.5_max": lambda p: cv2.GaussianBlur(p, (0, 0), 1.5).max(),
    "blur3_max": lambda p: cv2.GaussianBlur(p, (0, 0), 3).max(),
    "area_0.5": lambda p: float((p > 0.5).sum()),
}


def main(model: str):
    ins, _ = open_inspector(Path(model))
    kinds, scores = [], {k: [] for k in AGGREGATIONS}
    for kind_dir in sorted((DATA / "test").iterdir()):
        for f in sorted(kind_dir.iterdir()):
            prob = inspect_file(ins, f)[1].astype(np.float32)
            kinds.append(kind_dir.name)
            for k, fn in AGGREGATIONS.items():
                scores[k].append(float(fn(prob)))
    kinds = np.array(kinds)
    labels = kinds != "good"
    for k, s in scores.items():
        s = np.array(s)
        per = {t: auroc(s[(kinds == t) | ~labels], labels[(kinds == t) | ~labels]) for t in sorted(set(kinds) - {"good"})}
        print(f"{k:12s} all {auroc(s, labels):.3f}  " + "  ".join(f"{t} {v:.3f}" for t, v in per.items()))


if __name__ == "__main__":
    main(sys.argv[1])
