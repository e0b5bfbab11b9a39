"""Compare U-Net probability maps on the magnetic tile test set (docs/ACCURACY.md, third session):
per model and, given several, for the mean of their maps (an ensemble); image AUROC by each image
score aggregation (the station uses the maximum) and pixel AUROC (every 4th pixel each way).

    python3 compare_maps.py runs/unet_soft5/model.onnx
    python3 compare_maps.py runs/unet_tuned/model.onnx runs/unet_tuned_s1/model.onnx
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


def _truth(kind: str, image: Path, shape) -> np.ndarray:
    if kind == "good":
        return np.zeros(shape, bool)
    mask = cv2.imread(str(DATA / "ground_truth" / kind / f"{image.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(mask, shape[::-1], interpolation=cv2.INTER_NEAREST) > 127


def main(models: list[str]):
    inspectors = [open_inspector(Path(m))[0] for m in models]
    names = [Path(m).parent.name for m in models] + (["mean of maps"] if len(models) > 1 else [])
    kinds, truths = [], []
    scores = {n: {k: [] for k in AGGREGATIONS} for n in names}
    pixels = {n: [] for n in names}
    for kind_dir in sorted((DATA / "test").iterdir()):
        for f in sorted(kind_dir.iterdir()):
            maps = [inspect_file(ins, f)[1].astype(np.float32).copy() for ins in inspectors]
            if len(maps) > 1:
                maps.append(np.mean(maps, axis=0))
            kinds.append(kind_dir.name)
            truths.append(_truth(kind_dir.name, f, maps[0].shape)[::4, ::4].ravel())
            for n, prob in zip(names, maps):
                pixels[n].append(prob[::4, ::4].ravel())
                for k, fn in AGGREGATIONS.items():
                    scores[n][k].append(float(fn(prob)))
    kinds, truth = np.array(kinds), np.concatenate(truths)
    labels = kinds != "good"
    for n in names:
        print(f"{n}: pixel AUROC {auroc(np.concatenate(pixels[n]), truth):.3f}")
        for k, s in scores[n].items():
            s = np.array(s)
            per = {t: auroc(s[(kinds == t) | ~labels], labels[(kinds == t) | ~labels]) for t in sorted(set(kinds) - {"good"})}
            print(f"  {k:12s} image AUROC {auroc(s, labels):.3f}  " + "  ".join(f"{t} {v:.3f}" for t, v in per.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
