"""The same trained weights run two ways on the test set: 128-px tiles overlapping by 32 (a fixed
input) and the whole frame in one call (dynamic height and width, padded to a multiple of 16).
Prints image / pixel AUROC of both, the per-image score differences, verdict agreement at the
run's calibrated threshold and the ONNX Runtime time per frame.

    python3 whole_vs_tiled.py runs/default [--data ../../../shared/data/magnetic_tile]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edge.recipe import read_recipe
from edge.schema import to_dict
from train.evaluate import metrics, run_eval
from train.export import export_onnx
from train.methods.unet.model import UNet


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "../../../shared/data/magnetic_tile")
    ap.add_argument("--width", type=int, default=8)
    args = ap.parse_args(argv)
    ckpt = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = UNet(width=args.width)
    if "ema" in ckpt:  # the exported model.onnx holds the moving average, not the last step's weights
        model.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k != "n_averaged"})
    else:
        model.load_state_dict(ckpt["model"])
    recipe = to_dict(read_recipe(args.run / "model.onnx"))
    paths = {"tiled": args.run / "model-tiled.onnx", "whole": args.run / "model-whole.onnx"}
    export_onnx(model, 128, paths["tiled"], {**recipe, "preprocess": {**recipe["preprocess"], "input_multiple": 1}})
    export_onnx(model, 128, paths["whole"], {**recipe, "preprocess": {**recipe["preprocess"], "input_multiple": 16}},
                multiple=16)
    results, out = {}, {}
    for name, path in paths.items():
        t0 = time.perf_counter()
        results[name] = run_eval(path, args.data)
        seconds = time.perf_counter() - t0
        m = metrics(results[name])
        out[name] = {"image_auroc": m["overall"]["image_auroc"], "pixel_auroc": m["overall"]["pixel_auroc"],
                     "aupro": m["overall"]["aupro"], "dr": m["overall"]["dr"], "far": m["overall"]["far"],
                     "per_type_image_auroc": {k: v["image_auroc"] for k, v in m.items() if k != "overall"},
                     "seconds_per_image_incl_detection": seconds / len(results[name])}
    a = np.array([r.score for r in results["tiled"]])
    b = np.array([r.score for r in results["whole"]])
    va = np.array([r.verdict for r in results["tiled"]])
    vb = np.array([r.verdict for r in results["whole"]])
    d = np.abs(a - b)
    out["score_abs_diff"] = {"median": float(np.median(d)), "p95": float(np.quantile(d, 0.95)), "max": float(d.max())}
    out["map_mean_abs_diff"] = float(np.mean([np.abs(x.score_map - y.score_map).mean()
                                              for x, y in zip(results["tiled"], results["whole"])]))
    out["verdict_agreement"] = float((va == vb).mean())
    print(json.dumps(out, indent=2))
    (args.run / "whole_vs_tiled.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
