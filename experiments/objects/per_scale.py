"""Image AUROC of a two-scale model's native map, coarse map and fused map, each read alone
through the station's code (the map of each scale before fusion, at the frame's size; the fused
one as the station fuses them), overall and per defect type (docs/ACCURACY.md, "Two scales in one
call"). Post hoc, on one trained run:

    python3 per_scale.py runs/two_e60_s0/model.onnx [--data runs/data]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from edge.evaluation import auroc  # noqa: E402
from edge.images import read_image_or_fail, test_items  # noqa: E402
from edge.inspector import run_tiles  # noqa: E402
from edge.preprocess import fusion_weights  # noqa: E402
from train.evaluate import open_inspector  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=HERE / "runs/data")
    a = ap.parse_args()
    ins, runner = open_inspector(a.model)
    if ins.pre.p.coarse_scale is None:
        raise SystemExit(f"{a.model}: not a two-scale model (its recipe has no coarse_scale)")
    wn, wc = fusion_weights(ins.pre.p.coarse_weight)
    kinds, scores = [], []
    try:
        for it in test_items(a.data):
            x = ins.pre.to_model_space(read_image_or_fail(it.path))
            native, coarse = ins.pre.scale_maps(run_tiles(runner, ins.pre.tiles(x)))
            src = x if x.ndim == 2 else x[0]
            scores.append([ins.detector(src, m).score for m in (native, coarse, np.maximum(wn * native, wc * coarse))])
            kinds.append(it.kind)
    finally:
        runner.close()
    kinds_a, scores_a = np.array(kinds), np.array(scores)
    for j, name in enumerate(("native map", "coarse map", "fused")):
        parts = []
        for k in sorted(set(kinds) - {"good"}) + ["overall"]:
            pick = (kinds_a == "good") | ((kinds_a != "good") if k == "overall" else (kinds_a == k))
            parts.append(f"{k} {auroc(scores_a[pick, j], kinds_a[pick] != 'good'):.3f}")
        print(f"{name}: " + " | ".join(parts))


if __name__ == "__main__":
    main()
