"""The same trained weights run two ways on the test set: the run's own tiles (its training crop,
overlapping as its recipe says) and the whole frame in one call (dynamic height and width, padded to the network's input multiple).
Prints image / pixel AUROC of both, the per-image score differences, verdict agreement at the
run's calibrated threshold and the ONNX Runtime time per frame.

    python3 whole_vs_tiled.py runs/default [--data ../../../shared/data/magnetic_tile] [--tile 256]
"""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
from trained import arguments, load

from edge.recipe import read_recipe
from edge.schema import to_dict
from train.evaluate import metrics, run_eval
from train.export import export_onnx


def main(argv=None):
    ap = arguments(__doc__)
    ap.add_argument("--tile", type=int, default=256, help="the training crop, where the run exported whole frames")
    args = ap.parse_args(argv)
    model = load(args.run, args.width)
    recipe = to_dict(read_recipe(args.run / "model.onnx"))
    paths = {"tiled": args.run / "model-tiled.onnx", "whole": args.run / "model-whole.onnx"}
    side = onnx.load(args.run / "model.onnx").graph.input[0].type.tensor_type.shape.dim[-1].dim_value or args.tile
    multiple = model.input_multiple  # what whole frames are padded to
    export_onnx(model, side, paths["tiled"], {**recipe, "preprocess": {**recipe["preprocess"], "input_multiple": 1}})
    export_onnx(model, side, paths["whole"],
                {**recipe, "preprocess": {**recipe["preprocess"], "input_multiple": multiple}}, multiple=multiple)
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
