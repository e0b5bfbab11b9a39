"""Pixel F1 per defect type at pixel thresholds chosen on held-out good pixels only (docs/ACCURACY.md,
"Calibrated pixel threshold"): 0.5, the image threshold, and quantiles of the good images' maps.

    python3 pixel_thresholds.py runs/default/model.onnx
"""

import sys
from pathlib import Path

import numpy as np

from edge.images import good_images, split_holdout
from train.evaluate import inspect_file, open_inspector, run_eval

DATA = Path(__file__).resolve().parent / "../../../shared/data/magnetic_tile"


def main(model: Path, data: Path = DATA):
    results = run_eval(model, data)
    _, held = split_holdout(good_images(data), 0.1)
    ins, runner = open_inspector(model)
    try:
        good = np.concatenate([inspect_file(ins, f)[1].ravel() for f in held])
    finally:
        runner.close()
    t_img = ins.decision.score_threshold
    candidates = {"0.5": 0.5, "image threshold": t_img}
    for q in (0.99, 0.999):
        candidates[f"{1 - q:.1%} of good pixels"] = min(t_img, float(np.quantile(good, q)))
    kinds = sorted({r.kind for r in results} - {"good"})
    print("| pixel threshold | " + " | ".join(kinds) + " | all |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for name, t in candidates.items():
        cells = []
        for k in kinds + ["all"]:
            tp = fp = fn = 0
            for r in results:
                if k != "all" and r.kind != k:
                    continue
                p, truth = r.score_map >= t, r.truth > 0
                tp, fp, fn = tp + (p & truth).sum(), fp + (p & ~truth).sum(), fn + (~p & truth).sum()
            precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
            cells.append(f"{2 * precision * recall / max(1e-9, precision + recall):.3f}")
        print(f"| {name}, {t:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
