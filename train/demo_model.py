"""Train the packaged demo model: python -m train.demo_model [--minutes 3]

A U-Net (seed 000, width 4, ~0.5 MB) supervised on pseudo-defects painted on crops of
scikit-image's gravel photo, never the shared dataset;
calibrated on held-out crops; written to edge/demo/demo_model.onnx. The embedded demo replays
other gravel crops with painted defects (edge.demo.frames_dir).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import yaml

from edge import demo


def describe(model: Path):
    """Record what the demo was trained on (the run used a temporary folder)."""
    from edge.recipe import read_recipe
    from edge.schema import to_dict

    from .export import set_recipe
    recipe = to_dict(read_recipe(model))
    recipe["training"]["data"] = (f"scikit-image data.gravel(): {len(demo.training_crops())} crops of "
                                  f"{demo.MODEL_SIZE}x{demo.MODEL_SIZE} (with mirror images) from the top 320 rows")
    set_recipe(model, recipe)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--out", default=str(demo.MODEL))
    args = ap.parse_args(argv)
    from .cli import edge_train_main

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = tmp / "good"
        good.mkdir()
        for i, crop in enumerate(demo.training_crops()):
            cv2.imwrite(str(good / f"{i:03d}.png"), crop)
        cfg = {"method": "unet", "data": str(good), "out": str(tmp / "run"), "size": demo.MODEL_SIZE, "patch": 128,
               "batch": 16, "width": 4, "epochs": 10_000, "steps_per_epoch": 50, "time_budget_min": args.minutes,
               "seed": 0, "holdout": 0.2, "target_far": 0.02,
               # the shipped demo model was trained with the generator at full strength
               "pseudo": {"strength": [0.7, 1.0], "colours": [1, 1, 1], "feather": 0.0}}
        (tmp / "train.yaml").write_text(yaml.safe_dump(cfg))
        if edge_train_main(["--config", str(tmp / "train.yaml")]) != 0:
            raise SystemExit("demo training failed")
        shutil.copy(tmp / "run" / "model.onnx", args.out)
        describe(Path(args.out))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
