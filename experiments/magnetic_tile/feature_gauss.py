"""Does a normality reference help the segmenter? Post hoc on a trained run (no retraining): one
Gaussian of the network's own encoder features over good training images (PaDiM, Defard et al.
2021, but one Gaussian for every position: the parts are textures and frames vary in size) gives
a Mahalanobis map at 1/4 resolution; it is compared with the segmentation map alone and fused
with it. Normalisers come from the run's held-out good images only (never the test set).

    python3 feature_gauss.py runs/v2_s0 [--data ../../../shared/data/magnetic_tile] [--fit 200]

Prints image / pixel AUROC and per-type image AUROC for: seg (the station's map today), gauss,
and two fusions; writes <run>/feature_gauss.json.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from trained import arguments, load

from edge.evaluation import auroc
from edge.images import evenly, good_images, load_mask, read_image_or_fail, split_holdout, test_items
from edge.preprocess import Preprocessor
from edge.recipe import read_recipe
from train.methods.unet.model import UNet


@torch.no_grad()
def forward(model: UNet, x: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """(probability map at the frame's size, encoder features (C, H/4, W/4) of the padded frame)."""
    h, w = x.shape
    ph, pw = -h % 16, -w % 16
    t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw)), mode="reflect"))[None, None]
    feats, y = [], t
    for i, down in enumerate(model.downs[:4]):
        y = down(y if i == 0 else model.pool(y))
        feats.append(y)
    q = feats[2].shape[-2:]
    f = torch.cat([F.avg_pool2d(feats[1], 2), feats[2], F.interpolate(feats[3], size=q, mode="bilinear",
                                                                      align_corners=False)], 1)[0]
    p = model(t)[0, 0, :h, :w].numpy()
    return p, f


def mahalanobis(f: torch.Tensor, mean: torch.Tensor, prec: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    c = f.shape[0]
    d = (f.reshape(c, -1).T - mean)
    m = ((d @ prec) * d).sum(1).clamp_min(0).sqrt().reshape(1, 1, *f.shape[1:])
    up = F.interpolate(m, scale_factor=4, mode="bilinear", align_corners=False)[0, 0]
    return up[:shape[0], :shape[1]].numpy()


def main(argv=None):
    ap = arguments(__doc__)
    ap.add_argument("--fit", type=int, default=200, help="good training images the Gaussian is fitted on")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load(args.run, args.width)
    pre = Preprocessor(read_recipe(args.run / "model.onnx").preprocess, (0, 0))
    x_of = lambda path: pre.to_model_space(read_image_or_fail(path))  # noqa: E731

    train, held = split_holdout(good_images(args.data), 0.1)  # edge-train's split: held out = calibration
    feats = [forward(model, x_of(p))[1] for p in evenly(train, args.fit)]
    flat = torch.cat([f.reshape(f.shape[0], -1) for f in feats], 1).T.double()
    mean = flat.mean(0)
    cov = torch.cov(flat.T) + 0.01 * torch.eye(flat.shape[1], dtype=torch.float64)
    prec = torch.linalg.inv(cov).float()
    mean = mean.float()

    def maps(path):
        x = x_of(path)
        p, f = forward(model, x)
        return p, mahalanobis(f, mean, prec, x.shape)

    held_maps = [maps(p) for p in held]
    # normalisers from held-out good images: image scores' 95th percentile (the 5 % false-alarm
    # target), pixel maps' 99.9th percentile
    img_q = {k: float(np.quantile([m[i].max() for m in held_maps], 0.95)) for i, k in enumerate(("seg", "gauss"))}
    pix_q = {k: float(np.quantile(np.concatenate([m[i].ravel() for m in held_maps]), 0.999))
             for i, k in enumerate(("seg", "gauss"))}

    items = test_items(args.data)
    rng = np.random.default_rng(0)
    kinds, scores, pix_s, pix_t = [], {k: [] for k in ("seg", "gauss", "max_image", "sum_map")}, \
        {k: [] for k in ("seg", "gauss", "sum_map")}, []
    for it in items:
        p, g = maps(it.path)
        truth = load_mask(it.mask, p.shape)
        fused = p / pix_q["seg"] + g / pix_q["gauss"]
        kinds.append(it.kind)
        scores["seg"].append(p.max())
        scores["gauss"].append(g.max())
        scores["max_image"].append(max(p.max() / img_q["seg"], g.max() / img_q["gauss"]))
        scores["sum_map"].append(fused.max())
        idx = rng.choice(p.size, min(p.size, 4000), replace=False)
        for k, m in (("seg", p), ("gauss", g), ("sum_map", fused)):
            pix_s[k].append(m.ravel()[idx])
        pix_t.append(truth.ravel()[idx])
    kinds_a = np.array(kinds)
    labels = kinds_a != "good"
    truth_all = np.concatenate(pix_t)
    out = {"fit_images": len(feats), "features": int(flat.shape[1]), "normalisers": {"image": img_q, "pixel": pix_q}}
    for k, s in scores.items():
        s = np.array(s)
        row = {"image_auroc": auroc(s, labels),
               "per_type": {t: auroc(s[(kinds_a == t) | ~labels], labels[(kinds_a == t) | ~labels])
                            for t in sorted(set(kinds) - {"good"})},
               "far_at_heldout_q95": float((s[~labels] > (1.0 if k == "max_image" else
                                                          img_q.get(k, np.inf))).mean())}
        if k in pix_s:
            row["pixel_auroc"] = auroc(np.concatenate(pix_s[k]), truth_all)
        out[k] = row
    print(json.dumps(out, indent=2))
    (args.run / "feature_gauss.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
