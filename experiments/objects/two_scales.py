"""Two models of one part fused at the station's decision (docs/ACCURACY.md, "The working scale"):
a native-scale model (thin defects) and one trained on frames resized smaller (the part's
structure), each image score divided by its own calibrated threshold and each map by its own pixel
threshold, the larger kept, the maps brought to the frame's size; the fused image threshold
calibrated as edge-train calibrates one model's, on the fused scores of the held-out good images
(both models' own thresholds, each alone, add their false alarms). Post hoc, on two trained runs:

    python3 two_scales.py runs/e60_s0/model.onnx runs/s512_e60_s0/model.onnx [--data runs/data]
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from edge.images import good_images, split_holdout  # noqa: E402
from train.evaluate import inspect_file, metrics, open_inspector, run_eval, score_threshold  # noqa: E402


def normalised(model: Path, data: Path, held_out: list[Path]):
    """The model's test results and held-out good scores, scores and maps divided by its
    calibrated thresholds."""
    cal = json.loads((model.parent / "train.json").read_text())["summary"]["calibration"]
    image_t, pixel_t = cal["score_threshold"], cal["detect"]["threshold"]
    results = [replace(r, score=r.score / image_t, score_map=r.score_map / pixel_t, image=None, rec=None)
               for r in run_eval(model, data)]
    ins, runner = open_inspector(model)
    try:
        held = np.array([inspect_file(ins, f)[3] for f in held_out]) / image_t
    finally:
        runner.close()
    return results, held


def line(name: str, m: dict) -> str:
    o = m["overall"]
    kinds = " | ".join(f"{k} {m[k]['image_auroc']:.3f} / {m[k]['pixel_auroc']:.3f}" for k in m if k != "overall")
    return (f"{name}: {o['image_auroc']:.3f} / {o['pixel_auroc']:.3f} / AUPRO {o['aupro']:.3f}, DR {o['dr']:.2f} "
            f"FAR {o['far']:.3f}, DR at 5 % {o['dr_at_far5']:.2f} | {kinds}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("native", type=Path)
    ap.add_argument("coarse", type=Path)
    ap.add_argument("--data", type=Path, default=HERE / "runs/data")
    ap.add_argument("--holdout", type=float, default=0.1, help="train.yaml's holdout (edge-train's default)")
    ap.add_argument("--target-far", type=float, default=0.05, help="train.yaml's target_far (edge-train's default)")
    a = ap.parse_args()
    held_out = split_holdout(good_images(a.data), a.holdout)[1]
    fine, fine_held = normalised(a.native, a.data, held_out)
    coarse, coarse_held = normalised(a.coarse, a.data, held_out)
    threshold = score_threshold(np.maximum(fine_held, coarse_held), a.target_far, bounded=False)
    coarse = [replace(c, score_map=cv2.resize(c.score_map.astype(np.float32), f.truth.shape[::-1]),
                      pred=cv2.resize(c.pred.astype(np.uint8), f.truth.shape[::-1], interpolation=cv2.INTER_NEAREST),
                      truth=f.truth) for f, c in zip(fine, coarse)]
    assert all(f.name == c.name for f, c in zip(fine, coarse)), "the two runs saw the test images in another order"
    either = [replace(f, score=max(f.score, c.score), verdict="NG" if "NG" in (f.verdict, c.verdict) else "OK",
                      score_map=np.maximum(f.score_map, c.score_map), pred=np.maximum(f.pred, c.pred))
              for f, c in zip(fine, coarse)]
    fused = [replace(r, verdict="NG" if r.score >= threshold else "OK") for r in either]
    ng = np.array([r.verdict == "NG" for r in either])
    bad = np.array([r.kind != "good" for r in either])
    print(f"{len(held_out)} held-out good images; fused threshold {threshold:.3f} (1 = a model's own); NG where "
          f"either model's own threshold says so: DR {ng[bad].mean():.2f} FAR {ng[~bad].mean():.3f}")
    for name, rs in (("native", fine), ("coarse", coarse), ("fused, calibrated", fused)):
        print(line(name, metrics(rs)), flush=True)


if __name__ == "__main__":
    main()
