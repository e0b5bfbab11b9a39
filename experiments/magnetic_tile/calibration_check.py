"""Does the calibrated false-alarm rate hold on good parts the calibration never saw, also when
only a few good images are there to calibrate on? (docs/ACCURACY.md)

    python3 calibration_check.py runs/default/model.onnx [--target 0.05]

Scores the run's held-out good images (the calibration set) and test/good (unseen) once through
the station's code, then, for calibration sets of 10, 20, 40 and all held-out images (200 random
draws each), sets the threshold two ways, edge-train's (train.evaluate.score_threshold) and the
plain empirical quantile, and reports the false-alarm rate each gives on test/good.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from edge.images import good_images, split_holdout
from edge.recipe import read_recipe
from train.evaluate import inspect_file, open_inspector, score_threshold

DATA = Path(__file__).parent / "../../../shared/data/magnetic_tile"


def scores(model: Path, files: list[Path]) -> np.ndarray:
    ins, runner = open_inspector(model)
    try:
        return np.array([inspect_file(ins, f)[3] for f in files])
    finally:
        runner.__exit__(None, None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--holdout", type=float, default=0.1, help="the run's holdout share (edge-train's default)")
    args = ap.parse_args()
    model = Path(args.model)
    bounded = read_recipe(model).detect.method == "probability"
    _, held_files = split_holdout(good_images(DATA), args.holdout)
    held = scores(model, held_files)
    unseen = scores(model, sorted((DATA / "test" / "good").iterdir()))
    np.savez(model.parent / "calibration_scores.npz", held=held, unseen=unseen)
    rng = np.random.default_rng(0)
    rows = {}
    for n in (10, 20, 40, len(held)):
        ours, plain = [], []
        for _ in range(200 if n < len(held) else 1):
            sample = rng.choice(held, n, replace=False) if n < len(held) else held
            ours.append(float((unseen >= score_threshold(sample, args.target, bounded)).mean()))
            plain.append(float((unseen >= np.quantile(sample, 1 - args.target, method="higher")).mean()))
        rows[n] = {"edge-train": [float(np.mean(ours)), float(np.quantile(ours, 0.9))],
                   "quantile": [float(np.mean(plain)), float(np.quantile(plain, 0.9))]}
        print(f"{n:3d} held-out images: false-alarm rate on test/good, mean / 90th percentile over draws: "
              f"edge-train {np.mean(ours):.3f} / {np.quantile(ours, 0.9):.3f}, "
              f"plain quantile {np.mean(plain):.3f} / {np.quantile(plain, 0.9):.3f}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
