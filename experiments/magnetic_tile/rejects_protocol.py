"""Learning from rejects on the magnetic tiles (docs/ACCURACY.md): k labelled defects per type
are taken out of test/ (a pick that depends on the seed), become a rejects folder with their
masks, and the rest of test/ is what the model is judged on.

    python3 rejects_protocol.py prepare --k 10 --seed 0          # runs/rejects_k10_s0/{data,rejects,train.yaml}
    edge-train --config runs/rejects_k10_s0/train.yaml
    edge-eval --model runs/rejects_k10_s0/model.onnx --data runs/rejects_k10_s0/data
    python3 rejects_protocol.py run --k 10 --seed 0              # the three steps above
    edge-eval --model runs/default/model.onnx --data runs/rejects_k10_s0/data --out runs/rejects_k10_s0/eval_k0
    python3 rejects_protocol.py compare                          # the table of docs/ACCURACY.md

data/ is an MVTec tree of links: train/good is the real one, test/ and ground_truth/ hold the
images that were not picked. The real data never moves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = (HERE / "../../../shared/data/magnetic_tile").resolve()


def _marks_pixels(mask: Path) -> bool:
    import cv2
    m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    return m is not None and bool((m >= 128).any())


def prepare(k: int, seed: int, minutes: float, data: Path = DATA) -> Path:
    run = HERE / "runs" / f"rejects_k{k}_s{seed}"
    if run.exists():
        shutil.rmtree(run / "data", ignore_errors=True)
        shutil.rmtree(run / "rejects", ignore_errors=True)
    tree, rejects = run / "data", run / "rejects"
    (tree / "train").mkdir(parents=True)
    rejects.mkdir(parents=True)
    os.symlink(data / "train" / "good", tree / "train" / "good")
    rng = np.random.default_rng(seed)
    for kind_dir in sorted(p for p in (data / "test").iterdir() if p.is_dir()):
        kind = kind_dir.name
        images = sorted(kind_dir.iterdir())
        picked = set() if kind == "good" else {images[i] for i in rng.choice(len(images), k, replace=False)}
        (tree / "test" / kind).mkdir(parents=True)
        if kind != "good":
            (tree / "ground_truth" / kind).mkdir(parents=True)
        for img in images:
            mask = data / "ground_truth" / kind / f"{img.stem}_mask.png"
            if img in picked:
                shutil.copy(img, rejects / f"{kind}_{img.name}")
                if _marks_pixels(mask):  # a defective image whose mask marks nothing is an image-level label
                    shutil.copy(mask, rejects / f"{kind}_{img.stem}_mask.png")
            else:
                os.symlink(img, tree / "test" / kind / img.name)
                if mask.is_file():
                    os.symlink(mask, tree / "ground_truth" / kind / mask.name)
    (run / "train.yaml").write_text(f"# rejects_protocol.py: the default with {k} rejects per type (seed {seed})\n"
                                    f"data: data\nrejects: rejects\nout: .\nseed: {seed}\n"
                                    f"time_budget_min: {minutes:g}\n")
    return run


TYPES = ("blowhole", "break", "crack", "fray", "uneven")


def compare(ks=(0, 5, 10), seeds=(0, 1)):
    """k = 0 is the default's model (runs/default, runs/default_s1) judged on the images each
    k > 0 run left in test/ (eval_k0 of runs/rejects_k10_s<seed>), so every column sees the same
    images; each cell is image / pixel AUROC, averaged over the seeds that ran."""
    import json
    rows = {}
    for k in ks:
        for seed in seeds:
            if k == 0:
                path = HERE / "runs" / f"rejects_k10_s{seed}" / "eval_k0" / "metrics.json"
            else:
                path = HERE / "runs" / f"rejects_k{k}_s{seed}" / "eval" / "metrics.json"
            if path.is_file():
                rows.setdefault(k, []).append(json.loads(path.read_text()))
    print("| k rejects per type | runs | all: image / pixel AUROC / AUPRO | " + " | ".join(TYPES) + " | DR | FAR |")
    print("|---|---|---|" + "---|" * len(TYPES) + "---|---|")
    for k, ms in rows.items():
        def mean(kind, key, ms=ms):
            return sum(m[kind][key] for m in ms) / len(ms)
        cells = [f"{mean(t, 'image_auroc'):.3f} / {mean(t, 'pixel_auroc'):.3f}" for t in TYPES]
        print(f"| {k} | {len(ms)} | {mean('overall', 'image_auroc'):.3f} / {mean('overall', 'pixel_auroc'):.3f} / "
              f"{mean('overall', 'aupro'):.3f} | " + " | ".join(cells)
              + f" | {mean('overall', 'dr'):.3f} | {mean('overall', 'far'):.3f} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=("prepare", "run", "compare"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=15)
    args = ap.parse_args()
    if args.action == "compare":
        compare()
        return 0
    run = prepare(args.k, args.seed, args.minutes)
    print(run)
    if args.action == "run":
        with open(run / "train.log", "w") as log:
            subprocess.run(["edge-train", "--config", str(run / "train.yaml")], stdout=log, stderr=log, check=True)
        with open(run / "eval.log", "w") as log:
            subprocess.run(["edge-eval", "--model", str(run / "model.onnx"), "--data", str(run / "data"),
                            "--out", str(run / "eval")], stdout=log, stderr=log, check=True)
        print((run / "eval.log").read_text().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
