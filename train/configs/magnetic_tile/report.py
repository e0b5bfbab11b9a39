"""Print the docs/ACCURACY.md tables from runs/<name>/{train.json, eval/metrics.json}.

    python3 report.py                      # the four methods
    python3 report.py unet_soft5 unet_tuned  # any runs, by config name
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
METHODS = ("cae001", "renet_d", "skip_ae", "unet")
TYPES = ("blowhole", "break", "crack", "fray", "uneven")


def main(methods=METHODS):
    print("| method | minutes | epochs | weights | ONNX parity | image AUROC | pixel AUROC | pixel F1 | DR | FAR | mIoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    per_type = []
    for m in methods:
        run = HERE / "runs" / m
        try:
            t = json.loads((run / "train.json").read_text())["summary"]
            e = json.loads((run / "eval" / "metrics.json").read_text())
        except FileNotFoundError:
            print(f"| {m} | not run | | | | | | | | | |")
            continue
        o = e["overall"]
        print(f"| {m} | {t['minutes']:.1f} | {t['epochs']} | {t['weights_bytes'] / 1e6:.2f} MB | {t['onnx_parity_max_abs']:.1e} | "
              f"{o['image_auroc']:.3f} | {o['pixel_auroc']:.3f} | {o['pixel_f1']:.3f} | {o['dr']:.3f} | {o['far']:.3f} | {o['miou']:.3f} |")
        per_type.append((m, e))
    print()
    print("| method | " + " | ".join(f"{k} img / pix / F1" for k in TYPES) + " |")
    print("|---|" + "---|" * len(TYPES))
    for m, e in per_type:
        print(f"| {m} | " + " | ".join(f"{e[k]['image_auroc']:.3f} / {e[k]['pixel_auroc']:.3f} / {e[k]['pixel_f1']:.3f}"
                                       for k in TYPES) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or METHODS)
