"""Does the calibrated false-alarm rate hold on good parts the calibration never saw, also when
only a few good images are there to calibrate on? (docs/ACCURACY.md)

    python3 calibration_check.py runs/default/model.onnx [--target 0.05] [--data DIR]

Scores the run's held-out good images (the calibration set) and test/good (unseen) once through
the station's code, then, for calibration sets of 10, 20, 40 and all held-out images (200 random
draws each), sets the threshold two ways, edge-train's (train.evaluate.score_threshold) and the
plain empirical quantile, and reports the false-alarm rate each gives on test/good.
`--pooled` asks instead whether the run's own held-out set was a typical one: the held-out and
unseen good scores pooled, random calibration sets of n drawn from the pool (500 draws), each
judged on the rest of the pool. Scores are kept in calibration_scores.npz beside the model and
read from there while it is newer than the model.
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
    ap.add_argument("--data", type=Path, default=DATA, help="the run's data folder (default: the magnetic tiles)")
    ap.add_argument("--pooled", action="store_true", help="calibration sets drawn from held-out and unseen together")
    args = ap.parse_args()
    model = Path(args.model)
    bounded = read_recipe(model).detect.method == "probability"
    kept = model.parent / "calibration_scores.npz"
    if kept.exists() and kept.stat().st_mtime > model.stat().st_mtime:  # scored since the model was written
        held, unseen = np.load(kept)["held"], np.load(kept)["unseen"]
    else:
        _, held_files = split_holdout(good_images(args.data), args.holdout)
        held = scores(model, held_files)
        unseen = scores(model, sorted((args.data / "test" / "good").iterdir()))
        np.savez(kept, held=held, unseen=unseen)
    rng = np.random.default_rng(0)
    print(f"the run's own {len(held)} held-out images: false-alarm rate on test/good "
          f"{(unseen >= score_threshold(held, args.target, bounded)).mean():.3f}")
    if args.pooled:
        pool = np.concatenate([held, unseen])
        for n in sorted({10, 20, 40, 60, len(held)} & set(range(4, len(pool) // 2 + 1))):
            far = []
            for _ in range(500):
                order = rng.permutation(len(pool))
                far.append(float((pool[order[n:]] >= score_threshold(pool[order[:n]], args.target, bounded)).mean()))
            print(f"{n:3d} of {len(pool)} pooled good images: false-alarm rate on the rest, mean / 90th percentile "
                  f"{np.mean(far):.3f} / {np.quantile(far, 0.9):.3f}, over 7 % in {np.mean(np.array(far) > 0.07):.0%}")
        return
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
