"""How often perlin_seg finds a grain to draw cracks along (docs/ACCURACY.md, "Cracks along the
grain"): the share of training crops, cut and flipped as edge-train cuts them, for which
anomalies.grain_angle reads a direction.

    python3 grain_share.py ../shared/data/magnetic_tile objects/runs/data    # from experiments/
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from train.data import BatchSource, load_gray, pad_to  # noqa: E402
from train.methods.perlin_seg.anomalies import grain_angle  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="data folders (MVTec layout: train/good)")
    ap.add_argument("--crops", type=int, default=400)
    ap.add_argument("--patch", type=int, default=256, help="perlin_seg's training crop")
    args = ap.parse_args()
    for folder in args.data:
        files = sorted(p for p in (Path(folder) / "train" / "good").iterdir() if p.is_file())
        images = [pad_to(load_gray(f, None), args.patch) for f in files]
        crops = BatchSource(images, np.random.default_rng(0), args.patch).crops(args.crops)
        angles = [a for a in (grain_angle(c) for c in crops) if a is not None]
        print(f"{folder}: {len(angles)} of {len(crops)} crops ({len(angles) / len(crops):.1%}) have a grain")


if __name__ == "__main__":
    main()
