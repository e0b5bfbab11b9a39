"""The docs/ACCURACY.md table of the object set: runs/<name>/{train.json, eval/metrics.json}.

    python3 report.py default default_s1 p512_stem4 p512_stem4_s1
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
TYPES = ("broken", "contamination", "missing_rib", "crack")


def main(runs):
    print("| run | steps | image / pixel AUROC / AUPRO | " + " | ".join(TYPES) + " | DR / FAR |")
    print("|---|---|---|" + "---|" * len(TYPES) + "---|")
    for name in runs:
        try:
            t = json.loads((HERE / "runs" / name / "train.json").read_text())["summary"]
            e = json.loads((HERE / "runs" / name / "eval" / "metrics.json").read_text())
        except FileNotFoundError:
            print(f"| {name} | not run |")
            continue
        o = e["overall"]
        cells = [f"{e[k]['image_auroc']:.3f} / {e[k]['pixel_auroc']:.3f}" for k in TYPES]
        print(f"| {name} | {t['steps']:,} | {o['image_auroc']:.3f} / {o['pixel_auroc']:.3f} / {o['aupro']:.3f} | "
              + " | ".join(cells) + f" | {o['dr']:.3f} / {o['far']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["default", "default_s1", "p512_stem4", "p512_stem4_s1"])
