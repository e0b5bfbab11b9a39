"""The docs/ACCURACY.md tables of an experiment folder's runs: <folder>/runs/<name>/{train.json,
eval/metrics.json}; the defect types are the metrics' own (every key but "overall").

    python3 runs_table.py magnetic_tile default default_s1        # run, steps, overall and per type
    python3 runs_table.py magnetic_tile default_60:-5min          # a run's snapshot (model-5min.onnx, eval-5min/)
    python3 runs_table.py magnetic_tile --wide cae001 renet_d     # the longer tables (weights, parity, F1, mIoU)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(folder: Path, spec: str):
    name, _, snap = spec.partition(":")  # "run:-5min" -> train.json's snapshot, eval-5min/
    run = folder / "runs" / name
    try:
        t = json.loads((run / "train.json").read_text())["summary"]
        e = json.loads((run / f"eval{snap}" / "metrics.json").read_text())
    except FileNotFoundError:
        return None
    if snap:
        t = {**t, **t["snapshots"][snap.strip("-").removesuffix("min")]}
    return t, e


def compact(folder: Path, specs: list[str]):
    runs = [(s, _load(folder, s)) for s in specs]
    found = [r for _, r in runs if r is not None]
    types = [k for k in found[0][1] if k != "overall"] if found else []
    print("| run | steps | image / pixel AUROC / AUPRO | " + " | ".join(types) + " | DR / FAR |")
    print("|---|---|---|" + "---|" * len(types) + "---|")
    for spec, r in runs:
        if r is None:
            print(f"| {spec} | not run |")
            continue
        t, e = r
        o = e["overall"]
        cells = [f"{e[k]['image_auroc']:.3f} / {e[k]['pixel_auroc']:.3f}" for k in types]
        print(f"| {spec} | {t['steps']:,} | {o['image_auroc']:.3f} / {o['pixel_auroc']:.3f} / {o['aupro']:.3f} | "
              + " | ".join(cells) + f" | {o['dr']:.3f} / {o['far']:.3f} |")


def wide(folder: Path, specs: list[str]):
    print("| run | minutes | steps | weights | ONNX parity | image AUROC | pixel AUROC | AUPRO | pixel F1 | DR | FAR | mIoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    done = []
    for spec in specs:
        r = _load(folder, spec)
        if r is None:
            print(f"| {spec} | not run | | | | | | | | | | |")
            continue
        t, e = r
        o = e["overall"]
        steps = t.get("steps", f"{t['epochs']} epochs")
        print(f"| {spec} | {t['minutes']:.1f} | {steps} | {t['weights_bytes'] / 1e6:.2f} MB | {t['onnx_parity_max_abs']:.1e} | "
              f"{o['image_auroc']:.3f} | {o['pixel_auroc']:.3f} | {o.get('aupro', float('nan')):.3f} | {o['pixel_f1']:.3f} | "
              f"{o['dr']:.3f} | {o['far']:.3f} | {o['miou']:.3f} |")
        done.append((spec, e))
    if not done:
        return
    types = [k for k in done[0][1] if k != "overall"]
    print()
    print("| run | " + " | ".join(f"{k} img / pix / AUPRO / F1" for k in types) + " |")
    print("|---|" + "---|" * len(types))
    for spec, e in done:
        print(f"| {spec} | " + " | ".join(f"{e[k]['image_auroc']:.3f} / {e[k]['pixel_auroc']:.3f} / "
                                          f"{e[k].get('aupro', float('nan')):.3f} / {e[k]['pixel_f1']:.3f}"
                                          for k in types) + " |")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    folder, rest = Path(argv[0]), argv[1:]
    show = wide if "--wide" in rest else compact
    show(folder, [s for s in rest if s != "--wide"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
