"""Print the docs/ACCURACY.md tables from runs/<name>/{train.json, eval/metrics.json}.

    python3 report.py                      # the four methods
    python3 report.py unet_soft5 unet_tuned  # any runs, by config name
    python3 report.py default_60:-5min       # a run's snapshot (model-5min.onnx, eval-5min/)
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
METHODS = ("cae001", "renet_d", "skip_ae", "unet")
TYPES = ("blowhole", "break", "crack", "fray", "uneven")


def main(methods=METHODS):
    print("| run | minutes | steps | weights | ONNX parity | image AUROC | pixel AUROC | AUPRO | pixel F1 | DR | FAR | mIoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    per_type = []
    for m in methods:
        name, _, snap = m.partition(":")  # "run:-5min" -> runs/run/train.json's snapshot, eval-5min/
        run = HERE / "runs" / name
        try:
            t = json.loads((run / "train.json").read_text())["summary"]
            e = json.loads((run / f"eval{snap}" / "metrics.json").read_text())
        except FileNotFoundError:
            print(f"| {m} | not run | | | | | | | | | | |")
            continue
        if snap:
            t = {**t, **t["snapshots"][snap.strip("-").removesuffix("min")]}
        o = e["overall"]
        steps = t.get("steps", f"{t['epochs']} epochs")
        print(f"| {m} | {t['minutes']:.1f} | {steps} | {t['weights_bytes'] / 1e6:.2f} MB | {t['onnx_parity_max_abs']:.1e} | "
              f"{o['image_auroc']:.3f} | {o['pixel_auroc']:.3f} | {o.get('aupro', float('nan')):.3f} | {o['pixel_f1']:.3f} | "
              f"{o['dr']:.3f} | {o['far']:.3f} | {o['miou']:.3f} |")
        per_type.append((m, e))
    print()
    print("| run | " + " | ".join(f"{k} img / pix / AUPRO / F1" for k in TYPES) + " |")
    print("|---|" + "---|" * len(TYPES))
    for m, e in per_type:
        print(f"| {m} | " + " | ".join(f"{e[k]['image_auroc']:.3f} / {e[k]['pixel_auroc']:.3f} / "
                                       f"{e[k].get('aupro', float('nan')):.3f} / {e[k]['pixel_f1']:.3f}"
                                       for k in TYPES) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or METHODS)
