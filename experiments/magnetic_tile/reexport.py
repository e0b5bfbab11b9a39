"""Export a finished run's weights again, without training: the run's train.yaml as this
edge-train reads it (its method's options and recipe as they are now; `--set key=value` changes an
option, `--tile-overlap` the station's tiles' overlap, `--tile-blend` how their maps are combined), the
weights its checkpoint keeps
(Trainer.exported_from_checkpoint: what its model.onnx holds), ONNX parity and calibration on
its held-out good images as edge-train does them. So one set of trained weights is judged with the
exported graph and image score of today, or with an option changed (e.g. mirror=none), and
nothing else differs.

    python3 reexport.py runs/rejects_k10_s0 --out runs/rejects_k10_s0/mirror_none --set mirror=none
    python3 reexport.py runs/default --config default.yaml
    python3 reexport.py runs/default --config default.yaml --out runs/default/overlap0 --tile-overlap 0
    python3 reexport.py runs/default --config default.yaml --out runs/default/mean --tile-blend mean

Writes <out>/model.onnx (default: the run's own) and prints the export's summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from edge.images import good_images, split_holdout
from train.cli import export_model
from train.config import config_path, load_config
from train.methods import create
from train.trainer import Trainer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--config", type=Path, help="the run's config (default: its train.yaml)")
    ap.add_argument("--out", type=Path, help="folder for the model (default: the run's own)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a method option (YAML value)")
    ap.add_argument("--tile-overlap", type=int,
                    help="pixels by which the station's tiles overlap (default: the config's or the method's)")
    ap.add_argument("--tile-blend", choices=["mean", "ramp"],
                    help="how overlapping tiles' maps are combined (default: the config's, or ramp)")
    args = ap.parse_args(argv)
    config = args.config or args.run / "train.yaml"
    raw = yaml.safe_load(config.read_text()) or {}
    options = dict(raw.get("options") or {})
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    overrides: dict = {"options": options} if options else {}
    if args.tile_overlap is not None:
        overrides["tile_overlap"] = args.tile_overlap  # train.yaml's keys, checked as edge-train checks them
    if args.tile_blend is not None:
        overrides["tile_blend"] = args.tile_blend
    cfg, base = load_config(config, overrides)
    method = create(cfg, str(config), base)
    summary = json.loads((args.run / "train.json").read_text())["summary"]
    # the scales the run chose from its images (resolve_scales), before the network is made
    method.coarse_scale, method.working_scale = summary.get("coarse_scale"), summary.get("working_scale") or 1.0
    net = method.network()
    state = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(Trainer.exported_from_checkpoint(state))
    net.eval()
    data = config_path(base, cfg.data)
    _, held = split_holdout(good_images(data), cfg.holdout)
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(export_model(method, net, summary, out / "model.onnx", held, []), indent=1))


if __name__ == "__main__":
    main()
