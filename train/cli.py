"""edge-train and edge-eval.

    edge-train --config train.yaml [--out DIR] [--minutes M]
    edge-eval --model model.onnx --data <MVTec-style dir> [--out DIR] [--limit N]

Exit codes: 0 done, 1 failure, 2 bad input (one line naming the file, the key and the expectation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.backends.openvino import PRECISIONS
from edge.errors import InputError, run_cli


def _interrupted(_e) -> int:
    print("interrupted: the last epoch's checkpoint resumes the run", file=sys.stderr)
    return 1


def _guard(fn):
    prog = fn.__name__.replace("_main", "").replace("_", "-")

    def wrapped(argv=None):
        return run_cli(prog, lambda: fn(argv), [(KeyboardInterrupt, _interrupted)])
    wrapped.__name__ = fn.__name__
    return wrapped


def detect_for(method, stored: dict) -> dict:
    """The recipe's detect section: `stored` (at least the method's detector), the method's own
    parameters over it, the config's detect: over those."""
    from edge.schema import merge
    return merge(merge(stored, method.recipe_detect()), method.cfg.detect)


def scale_text(method) -> str:
    """The recipe's training note on the scale the model works at."""
    r, coarse, working = method.r, method.coarse_scale, method.working_scale
    if r.size is not None:
        return f"resized to {r.size}x{r.size}"
    at = "native" if working == 1.0 else f"x{working:.4g} (the working scale)"
    if method.whole_frame():
        return f"{at}, whole frames"
    if coarse:
        return f"native and x{coarse:.4g}, fused (tiled; a frame's tiles at both scales in one call)"
    return f"{at}, tiled (a frame's tiles in one call)"


def recipe_for(method, summary: dict) -> dict:
    """The inspection recipe a run's model is exported with (train.methods.Method, the run's summary)."""
    from edge.schema import to_dict

    from .data import training_preprocess
    cfg, r = method.cfg, method.r
    coarse, working = method.coarse_scale, method.working_scale
    detect = detect_for(method, {"method": r.detect})
    training = {"data": str(cfg.data), "images": str(summary["train_images"]),
                "holdout": str(summary["holdout_images"]), "epochs": str(summary["epochs"]),
                "steps": str(summary.get("steps", "")), "minutes": f"{summary['minutes']:.1f}", "seed": str(cfg.seed),
                "scale": scale_text(method),
                **({"rejects": f"{summary['rejects']} ({summary['rejects_masked']} with masks)"}
                   if summary.get("rejects") else {}),
                **method.recipe_training()}
    return {"model_family": cfg.method,
            "preprocess": to_dict(training_preprocess(r.size, r.tile_overlap, method.whole_frame() or 1, cfg.tile_blend,
                                                      coarse, working)),
            "detect": detect, "decision": {"rule": "regions", "min_area": 16}, "training": training}


REJECTS_CAUGHT_WARN = 0.5  # below this share of its own rejects judged NG, edge-train warns


def export_model(method, model, summary: dict, model_path: Path, holdout_files: list[Path],
                 reject_files: list[Path]) -> dict:
    """A trained network of `method` as ONNX with the recipe, parity against PyTorch, thresholds
    calibrated on the held-out good images, its own rejects judged (edge-train; reexport.py)."""
    from .evaluate import calibrate, rejects_caught
    from .export import export_onnx, parity, set_recipe
    cfg = method.cfg
    side, multiple, net = method.export_side(), method.whole_frame(), method.exported(model)
    channels = method.input_channels()
    export_onnx(net, side, model_path, recipe_for(method, summary), multiple, channels)
    out = {"onnx_parity_max_abs": parity(net, model_path, side, multiple=multiple, channels=channels),
           "onnx_input": [1, 1, f"H (multiple of {multiple})", f"W (multiple of {multiple})"] if multiple
           else ["N (the frame's tiles)", channels, side, side]}
    if holdout_files:
        recipe = calibrate(model_path, holdout_files, cfg.target_far, cfg.target_pixel_far)
        set_recipe(model_path, recipe)
        out["calibration"] = {"score_threshold": recipe["decision"]["score_threshold"],
                              "detect": recipe["detect"][recipe["detect"]["method"]]}
        if reject_files:
            out["rejects_caught"] = caught = rejects_caught(model_path, reject_files)
            if caught < REJECTS_CAUGHT_WARN:
                print(f"edge-train: warning: {model_path} judges only {caught:.0%} of its own {len(reject_files)} "
                      f"rejects NG at the calibrated threshold; compare it on held-out rejects with a model "
                      f"trained without rejects before deploying it (docs/ACCURACY.md)", file=sys.stderr)
    out["onnx_bytes"] = model_path.stat().st_size
    return out


def _calibrate_only(cfg, base: Path) -> int:
    from edge.images import good_images, split_holdout

    from .config import config_path
    from .evaluate import calibrate
    from .export import set_recipe
    out = config_path(base, cfg.out)
    model = out / "model.onnx"
    if not model.is_file():
        raise InputError(str(out), "out", f"no model.onnx to calibrate in {out}: train first")
    data = config_path(base, cfg.data)
    _, held = split_holdout(good_images(data), cfg.holdout)
    if not held:
        raise InputError("<config>", "holdout", "expected > 0: calibration needs held-out good images")
    # the image score and the other detection settings as this edge-train and the config make them
    # (thresholds aside, which are calibrated next), so a newer image score is calibrated, not mixed in
    from edge.recipe import read_recipe
    from edge.schema import to_dict

    from .data import training_preprocess
    from .methods import create
    recipe = to_dict(read_recipe(model))
    if recipe["model_family"] != cfg.method:
        raise InputError("<config>", "method", f"expected {recipe['model_family']}, the method {model} was trained "
                                               f"with, got {cfg.method}")
    method = create(cfg, "<config>", base)
    recipe["detect"] = detect_for(method, recipe["detect"])
    if method.r.export is not None and recipe["preprocess"].get("size") is None:
        # a tiled model: the config's tiles (overlap, and blend: today's default unless it names one)
        tiles = training_preprocess(None, method.r.tile_overlap, tile_blend=cfg.tile_blend)
        recipe["preprocess"].update(tile_overlap=tiles.tile_overlap, tile_blend=tiles.tile_blend)
    set_recipe(model, recipe)
    recipe = calibrate(model, held, cfg.target_far, cfg.target_pixel_far)
    set_recipe(model, recipe)
    print(f"edge-train: recalibrated {model}: score threshold {recipe['decision']['score_threshold']:.6g} "
          f"({recipe['training']['calibration']})", file=sys.stderr)
    return 0


@_guard
def edge_train_main(argv=None):
    ap = argparse.ArgumentParser(prog="edge-train", description="train a method on good images, export ONNX")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", help="output folder (overrides the config)")
    ap.add_argument("--minutes", type=float, help="time budget (overrides time_budget_min)")
    ap.add_argument("--calibrate-only", action="store_true",
                    help="no training: set the detection settings (the method's and the config's detect:), the "
                         "tiles' overlap and blend and the thresholds of the run's model.onnx again on its held-out good "
                         "images (after changing target_far, tile_overlap or tile_blend, or with a newer edge-train)")
    args = ap.parse_args(argv)
    from .config import load_config
    overrides = {k: v for k, v in (("out", args.out), ("time_budget_min", args.minutes)) if v is not None}
    cfg, base = load_config(args.config, overrides)
    if args.calibrate_only:
        return _calibrate_only(cfg, base)

    from .trainer import Trainer

    t = Trainer(cfg, base)
    summary = t.fit()
    if t.rank != 0:
        return 0
    t.plot_loss(t.out / "loss.png")
    model_path = t.out / "model.onnx"
    def export(summary: dict, path: Path) -> dict:
        return export_model(t.method, t.model, summary, path, t.holdout_files, t.reject_files)

    summary.update(export(summary, model_path))
    final = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
    for key, name in sorted(t.snapshots.items(), key=lambda kv: float(kv[0])):  # the accuracy curve
        import torch
        snap = torch.load(t.out / name, map_location="cpu", weights_only=True)
        t.model.load_state_dict(snap["model"])
        at = {**summary, "minutes": snap["minutes"], "steps": snap["steps"], "epochs": "-"}
        summary.setdefault("snapshots", {})[key] = {"minutes": snap["minutes"], "steps": snap["steps"],
                                                    **export(at, t.out / f"model-{key}min.onnx")}
    t.model.load_state_dict(final)
    t.write_summary(summary)
    print(json.dumps(summary, indent=2))
    print(f"edge-train: wrote {model_path} (ONNX parity max |diff| {summary['onnx_parity_max_abs']:.2e})", file=sys.stderr)
    return 0


@_guard
def edge_eval_main(argv=None):
    ap = argparse.ArgumentParser(prog="edge-eval", description="evaluate a model on an MVTec-style test set")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", help="output folder (default: eval/ beside the model)")
    ap.add_argument("--limit", type=int, default=0, help="at most N images per test folder (quick checks)")
    ap.add_argument("--detect", choices=("dct_fusion", "squared_residual", "probability"),
                    help="evaluate with this detection method instead of the model's recipe (uncalibrated)")
    ap.add_argument("--backend", choices=("auto", "onnxruntime", "openvino"), default="auto",
                    help="runner, as the station's model.backend (default auto: OpenVINO where the openvino "
                         "extra is installed, else ONNX Runtime)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="OpenVINO's compute precision, as the station's model.precision")
    args = ap.parse_args(argv)
    model = Path(args.model)
    if not model.is_file():
        raise InputError("<command line>", "--model", f"model file not found: {model}")
    if not Path(args.data).is_dir():
        raise InputError("<command line>", "--data", f"no such folder: {args.data}")
    from .evaluate import evaluate
    out = Path(args.out) if args.out else model.parent / "eval"
    overrides = {"detect": {"method": args.detect}, "decision": {"rule": "regions"}} if args.detect else None
    m = evaluate(model, Path(args.data), out, args.limit, overrides, args.backend, args.precision)
    print((out / "metrics.json").read_text())
    o = m["overall"]
    f = lambda key, fmt=".4f": "absent" if o[key] is None or o[key] != o[key] else format(o[key], fmt)  # noqa: E731
    print(f"edge-eval: image AUROC {f('image_auroc')}, pixel AUROC {f('pixel_auroc')}, AUPRO {f('aupro')}, "
          f"pixel F1 {f('pixel_f1')}, DR {f('dr', '.3f')}, FAR {f('far', '.3f')}; wrote {out}"
          + ("" if o["pixel_auroc"] is not None else " (no ground-truth masks: pixel metrics absent)"), file=sys.stderr)
    return 0


def train_entry():
    sys.exit(edge_train_main())


def eval_entry():
    sys.exit(edge_eval_main())
