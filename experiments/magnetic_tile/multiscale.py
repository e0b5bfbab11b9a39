"""Does the segmenter, trained at native scale, see large defects (uneven bands, breaks) better on
a downscaled frame? Post hoc on a trained run (no retraining): the whole frame at scales 1, 1/2
and 1/4, maps brought back to full size, each scale's map divided by the 95th percentile of its
held-out good images' peaks (never the test set), fused by the maximum or the mean.

    python3 multiscale.py runs/v2_s0 [--data ../../../shared/data/magnetic_tile]

Writes <run>/multiscale.json.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch
from feature_gauss import forward
from trained import arguments, load

from edge.evaluation import auroc
from edge.images import good_images, load_mask, read_image_or_fail, split_holdout, test_items
from edge.preprocess import Preprocessor
from edge.recipe import read_recipe

SCALES = (1.0, 0.5, 0.25)


def main(argv=None):
    args = arguments(__doc__).parse_args(argv)
    torch.set_grad_enabled(False)
    model = load(args.run, args.width)
    pre = Preprocessor(read_recipe(args.run / "model.onnx").preprocess, (0, 0))

    def maps(path):
        x = pre.to_model_space(read_image_or_fail(path))
        h, w = x.shape
        out = []
        for s in SCALES:
            xs = x if s == 1 else cv2.resize(x, (max(16, round(w * s)), max(16, round(h * s))),
                                             interpolation=cv2.INTER_AREA)
            p = forward(model, xs)[0]
            out.append(p if s == 1 else cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR))
        return out

    _, held = split_holdout(good_images(args.data), 0.1)
    held_peaks = np.array([[m.max() for m in maps(p)] for p in held])
    q = np.quantile(held_peaks, 0.95, axis=0)
    items = test_items(args.data)
    rng = np.random.default_rng(0)
    names = [f"scale_{s}" for s in SCALES] + ["max", "mean"]
    scores = {k: [] for k in names}
    pix = {k: [] for k in names}
    truths, kinds = [], []
    for it in items:
        ms = [m / qi for m, qi in zip(maps(it.path), q)]
        fused = {"max": np.maximum.reduce(ms), "mean": np.mean(ms, axis=0)}
        idx = rng.choice(ms[0].size, min(ms[0].size, 4000), replace=False)
        for k, m in list(zip(names, ms)) + list(fused.items()):
            scores[k].append(m.max())
            pix[k].append(m.ravel()[idx])
        truths.append(load_mask(it.mask, ms[0].shape).ravel()[idx])
        kinds.append(it.kind)
    kinds_a = np.array(kinds)
    labels = kinds_a != "good"
    truth = np.concatenate(truths)
    out = {"heldout_q95": q.tolist()}
    for k in names:
        s = np.array(scores[k])
        out[k] = {"image_auroc": auroc(s, labels), "pixel_auroc": auroc(np.concatenate(pix[k]), truth),
                  "per_type": {t: auroc(s[(kinds_a == t) | ~labels], labels[(kinds_a == t) | ~labels])
                               for t in sorted(set(kinds) - {"good"})}}
    print(json.dumps(out, indent=2))
    (args.run / "multiscale.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
