"""Pixel AUROC and AUPRO, all types and per type, with the probability map blurred by several
sigmas (detect.probability.sigma; docs/ACCURACY.md, "Regions from a blurred map"). One pass
through the station's code on the raw map (sigma 0), then the same maps blurred as the station's
detector blurs them (ProbabilityDetector.score_map); the image
score reads the raw map whatever the sigma, so image AUROC is the same in every row.

    python3 map_sigma.py runs/default/model.onnx [--data DIR] [--sigmas 0 1 2 4 8]
"""

import argparse
from dataclasses import replace
from pathlib import Path

from edge.detect import ProbabilityDetector
from edge.recipe import Probability
from train.evaluate import metrics, run_eval

DATA = Path(__file__).parent / "../../../shared/data/magnetic_tile"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0, 1, 2, 4, 8])
    a = ap.parse_args()
    raw = run_eval(a.model, a.data, overrides={"detect": {"probability": {"sigma": 0}}})
    raw = [replace(r, image=None, rec=None) for r in raw]  # keep the maps and masks only
    kinds = None
    for s in a.sigmas:
        blur = ProbabilityDetector(Probability(sigma=s))
        m = metrics([replace(r, score_map=blur.score_map(None, r.score_map).copy()) for r in raw])
        if kinds is None:
            kinds = [k for k in m if k != "overall"]
            print(f"image AUROC {m['overall']['image_auroc']:.3f} (every sigma)")
            print("| sigma | all: pixel AUROC / AUPRO | " + " | ".join(kinds) + " |")
            print("|---|---|" + "---|" * len(kinds))
        cells = [f"{m[k]['pixel_auroc']:.3f} / {m[k]['aupro']:.3f}" for k in ["overall"] + kinds]
        print(f"| {s:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
