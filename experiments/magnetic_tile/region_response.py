"""Where inside a defect the probability map responds (docs/ACCURACY.md, "Bands taught as whole
regions"): per defect type, the map's mean in the mask's interior (eroded by 10 px), in its
10-px rim and outside it, and the share of the mask above 0.5; on good images the mean and the
99th percentile. Then the same model on synthetic bands (anomalies.band_anomaly) drawn on the
first 40 good test images: the map's mean inside and outside the band, and the image score with
and without it. Raw maps (sigma 0), the station's Inspector.

    python3 region_response.py runs/default/model.onnx [--data DIR]
"""

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from edge.evaluation import inspect_frame, read_image
from train.evaluate import open_inspector, run_eval, test_items
from train.methods.perlin_seg.anomalies import band_anomaly

DATA = Path(__file__).parent / "../../../shared/data/magnetic_tile"
RAW = {"detect": {"probability": {"sigma": 0}}}


def _mean(values: np.ndarray) -> float:
    """The mean, nan for none (a thin defect has no interior left after the erosion)."""
    return float(values.mean()) if values.size else float("nan")


def real_defects(model: Path, data: Path):
    acc: dict[str, list] = defaultdict(list)
    for r in run_eval(model, data, overrides=RAW):
        m = r.score_map
        if r.kind == "good":
            acc["good"].append((m.mean(), np.percentile(m, 99)))
            continue
        mask = (r.truth > 0).astype(np.uint8)
        inner = cv2.erode(mask, np.ones((21, 21), np.uint8))
        rim = mask - inner
        acc[r.kind].append((_mean(m[inner > 0]), _mean(m[rim > 0]), _mean(m[mask == 0]), _mean(m[mask > 0] > 0.5)))
    print("| type | interior | rim | outside | mask > 0.5 |\n|---|---|---|---|---|")
    for kind, rows in sorted(acc.items()):
        if kind == "good":
            continue
        a = np.array(rows, np.float64)
        means = [_mean(col[~np.isnan(col)]) for col in a.T]  # thin defects have no interior
        cells = ["-" if np.isnan(v) else f"{v:.3f}" for v in means]
        print(f"| {kind} ({len(rows)}) | " + " | ".join(cells) + " |")
    g = np.array(acc["good"])
    print(f"good ({len(g)}): mean {g[:, 0].mean():.3f}, 99th percentile {g[:, 1].mean():.3f}")


def synthetic_bands(model: Path, data: Path, n: int = 40):
    ins, runner = open_inspector(model, RAW)
    rng = np.random.default_rng(0)
    rows = []
    try:
        for it in [it for it in test_items(data) if it.kind == "good"][:n]:
            img = read_image(it.path)
            if img.ndim != 2:  # band_anomaly draws on one channel
                continue
            clean = img.astype(np.float32) / 255
            band, mask = band_anomaly(clean, rng)
            if not mask.any():
                continue
            src, rec, _, score, _ = inspect_frame(ins, (band * 255).round().astype(np.uint8))
            m = ins.detector.score_map(src, rec)
            inside, outside = float(m[mask > 0].mean()), float(m[mask == 0].mean())
            clean_score = inspect_frame(ins, img)[3]
            rows.append((inside, outside, score, clean_score))
    finally:
        runner.close()
    a = np.mean(rows, 0)
    print(f"synthetic bands on {len(rows)} good images: map inside {a[0]:.3f}, outside {a[1]:.3f}; "
          f"image score {a[2]:.3f} (without the band {a[3]:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args()
    real_defects(a.model, a.data)
    synthetic_bands(a.model, a.data)


if __name__ == "__main__":
    main()
