"""perlin_seg: a segmentation network that learns what does not belong on the surface from three
kinds of synthetic anomaly on good images at their native scale: seed 000's pseudo-defects
(faint, mostly dark shapes and lines), anomalies of the DRAEM family (Zavrtanik et al., ICCV
2021: Perlin-noise masks filled with texture that does not belong there; anomalies.py), for
large, irregular changes of texture and brightness, and cracks (thin, wandering dark lines, half
of them straight along the surface's grain where it has one; anomalies.py). Seed 000's U-Net is
the network, behind a stride-2 stem (it runs at half resolution, its map brought back to full
size: a quarter of the work per frame); BCE + Dice and an image-level loss.
The station cuts each frame into `export`-pixel tiles overlapping by `tile_overlap` (the scale the
network was trained at) and runs all of a frame's tiles in one call (a dynamic batch); parts large
against the tile also at a coarse scale, in the same call (train.yaml's coarse_scale: half the
crops are cut from the images resized, each scale trains its own U-Net, unet.model.ScaleRouted,
and the station fuses the two maps); the option
`whole_frame` exports for one call on the whole frame instead. The exported graph averages each
tile's map with that of the tile turned a half turn (`mirror`, in the same call: twice the work),
and the image score is the mean of the map's highest 0.1 % (`top_share`); docs/ACCURACY.md
measured both against one pass, the other mirrors, the peak and top-k counts.

Options (the config's `options:` section) are this folder's PerlinSegOptions; the defaults are what the
method is judged by (docs/ACCURACY.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.defects import pseudo_defect
from edge.errors import InputError
from edge.schema import field, rng, to_dict

from ...export import MirrorMean
from ...rejects import BAG, BAG_TILES, bag_crops, crop_around_defect, paste_defect
from ..base import Method, register
from ..unet import INPUT_NORM_DOC
from ..unet.model import ScaleRouted, UNet
from .anomalies import BAND_COVER, FILL_ODDS, FILLS, SMALLER_SIDE, band_anomaly, crack_anomaly, perlin_anomaly
from .loss import mine_hard_negatives, segmentation_loss

# the axes of (N, C, H, W) each `mirror` flips
MIRRORS = {"none": (), "vertical": (2,), "horizontal": (3,), "rotate": (2, 3)}


@dataclass(frozen=True)
class PerlinSegOptions:
    share: float = field(0.7, check=rng(0, 1), doc="share of training crops that get an anomaly")
    small_share: float = field(0.7, check=rng(0, 1), doc="of those, the share drawn as shapes (seed 000 "
                                                         "pseudo-defects, cracks or bands) instead of Perlin anomalies")
    crack_share: float = field(0.35, check=rng(0, 1), doc="of the drawn shapes, the share drawn as cracks "
                                                          "(thin, wandering dark lines, anomalies.crack_anomaly) "
                                                          "instead of seed 000 pseudo-defects")
    crack_grain: float = field(0.5, check=rng(0, 1), doc="of the cracks, the share drawn straight along the crop's "
                                                         "grain where its texture has a direction (a crack that runs "
                                                         "with the grain hides among its lines; docs/ACCURACY.md, "
                                                         "\"Cracks along the grain\")")
    band_share: float | None = field(None, check=rng(0, 1), doc="of the drawn shapes, the share drawn as bands (a "
                                     "region behind a sharp, near-straight edge, brighter or darker, its grain "
                                     "stronger or weaker: anomalies.band_anomaly) instead of seed 000 pseudo-defects; "
                                     "null = 0.3, or 0.15 with rejects (docs/ACCURACY.md)")
    band_region: bool | None = field(None, doc="a band's target is its whole region, not weighted by the visibility "
                                               "of each pixel's change (a band is a region finished differently, "
                                               "visible as a region); null = on, off with rejects (docs/ACCURACY.md: "
                                               "+0.02 image AUROC without rejects, -0.03 with ten per type)")
    band_cover: tuple[float, float] | None = field(None, doc="range of the crop's share a band covers; null = "
                                                   "0.1-0.45 (the band is the smaller side of its edge, as a "
                                                   "defect is the smaller part of a surface), or 0.1-0.7 with "
                                                   "rejects (docs/ACCURACY.md, \"The smaller side\")")
    opacity: tuple[float, float] = field((0.3, 1.0), doc="range of the Perlin anomaly's blend weight")
    fills: tuple[float, float, float, float] = field(FILL_ODDS, doc="odds of the Perlin anomaly's fills "
                                                                    + ", ".join(FILLS))
    exposure: float = field(0.1, check=rng(0, 1), doc="good crops' brightness is scaled by exp(+-exposure), so "
                                                      "exposure drift between parts is not learned as a defect")
    stem: int = field(2, check=lambda v: None if v in (1, 2, 4) else "1, 2 or 4",
                      doc="the network runs at 1/stem of the resolution behind a learned strided convolution, "
                          "its map brought back to full size (stem^2 less work per frame, a stem times larger "
                          "view; 1 = full resolution; 2 measured level in image AUROC and better in pixel "
                          "AUROC than 1 at a quarter of the work, docs/ACCURACY.md)")
    smooth: int = field(1, check=lambda v: None if v >= 1 and v % 2 else "an odd integer >= 1",
                        doc="side of the mean filter on the probability map before the image score's peak")
    top_share: float = field(0.001, check=rng(0, 0.5), doc="the image score is the mean of this share of the "
                                                           "map's highest pixels (the recipe's detect.probability."
                                                           "top_share; 0 = the peak; docs/ACCURACY.md: 0.1 % ranked "
                                                           "parts better than the peak)")
    map_sigma: float = field(2.0, check=rng(0, 32), doc="Gaussian blur in pixels of the map whose pixel threshold cuts "
                                                        "the defect regions (the recipe's detect.probability.sigma; "
                                                        "the image score reads the raw map; docs/ACCURACY.md: regions "
                                                        "found better, AUPRO +0.02)")
    image_loss: float = field(0.5, check=rng(0, 10), doc="weight of the image-level loss: binary cross-entropy of "
                                                         "each crop's top-k probabilities against 'has a defect', "
                                                         "so a false blob on a clean crop costs as much as a miss")
    topk: int = field(16, check=rng(1, 4096), doc="pixels averaged for a crop's image-level probability")
    hard_negatives: float = field(0.25, check=rng(0, 1), doc="share of crops centred on the highest-scoring "
                                                             "places of good training images (the network's own "
                                                             "false alarms, mined every mine_every epochs)")
    mine_every: int = field(10, check=rng(1, 100_000), doc="epochs between two searches for hard negatives")
    reject_share: float = field(0.25, check=rng(0, 1), doc="with rejects: share of crops taken from the real "
                                                           "rejects (around a defect when masked)")
    visibility: float = field(1.0, check=rng(0, 100), doc="soft targets for synthetic anomalies: a pixel's target "
                                                          "is its mask times min(1, change / (visibility x the crop's "
                                                          "standard deviation)), the change blurred over ~3 px, so a "
                                                          "change the texture hides is not taught as a defect; "
                                                          "0 = binary masks")
    paste_share: float = field(0.15, check=rng(0, 1), doc="with masked rejects: share of crops with a real "
                                                          "defect Poisson-blended into a good crop")
    whole_frame: bool = field(False, doc="export for whole frames (one call on the frame padded to a multiple of "
                                         "16 x stem) instead of tiles (one call with all of a frame's tiles): faster on a "
                                         "CPU, but a network trained on tiles scores whole frames differently (on "
                                         "the tiles 0.06 lower image AUROC, docs/ACCURACY.md)")
    input_norm: bool = field(False, doc=INPUT_NORM_DOC + " (keeps the model tiled)")
    mirror: Literal["none", "vertical", "horizontal", "rotate"] = field(
        "rotate", doc="test-time mirroring in the exported model: its map is the mean of the map of each tile and of "
                      "the tile mirrored (rotate: both axes, a half turn; vertical: upside down), mirrored back, in "
                      "the same call; twice the network's work per frame for a steadier map (docs/ACCURACY.md); "
                      "none = one pass")

    def band_settings(self, rejects: bool) -> tuple[float, bool, tuple[float, float]]:
        """(band_share, band_region, band_cover) as set, or the measured choice for a run with or
        without rejects: real rejects teach the regions themselves, and bands drawn as whole regions
        beside them cost image AUROC (docs/ACCURACY.md, "Bands taught as whole regions"); the
        smaller side was measured without rejects only ("The smaller side")."""
        share = self.band_share if self.band_share is not None else (0.15 if rejects else 0.3)
        region = self.band_region if self.band_region is not None else not rejects
        cover = self.band_cover if self.band_cover is not None else (BAND_COVER if rejects else SMALLER_SIDE)
        return share, region, (cover[0], cover[1])

    def validate(self, where, prefix):
        if self.crack_share + self.band_settings(False)[0] > 1:
            raise InputError(where, f"{prefix}.band_share", "expected crack_share + band_share <= 1")
        if self.reject_share + self.paste_share > 1:
            raise InputError(where, f"{prefix}.paste_share", "expected reject_share + paste_share <= 1")
        if self.band_cover is not None and not 0 < self.band_cover[0] <= self.band_cover[1] < 1:
            raise InputError(where, f"{prefix}.band_cover", f"expected 0 < low <= high < 1, got {list(self.band_cover)}")
        if not 0 <= self.opacity[0] <= self.opacity[1] <= 1:
            raise InputError(where, f"{prefix}.opacity", f"expected 0 <= low <= high <= 1, got {list(self.opacity)}")
        if min(self.fills) < 0 or sum(self.fills) <= 0:
            raise InputError(where, f"{prefix}.fills", f"expected {len(FILLS)} odds >= 0, not all 0")


def visible_targets(xs: np.ndarray, clean: np.ndarray, masks: np.ndarray, visibility: float,
                    keep: list[int] | None = None) -> np.ndarray:
    """Masks weighted by how visible the synthetic change is against the crop's own texture
    (NSA, Schlüter et al. ECCV 2022, labels by a logistic of the intensity change; here linear and
    per pixel): 1 where the blurred change reaches visibility x the crop's std, less where it is
    fainter. Crops without an anomaly keep their all-zero target, the crops in `keep` their mask."""
    out = masks.copy()
    for i in np.setdiff1d(np.flatnonzero(masks.reshape(len(masks), -1).max(1) > 0), keep or []):
        change = cv2.GaussianBlur(np.abs(xs[i] - clean[i]), (0, 0), 1.5)
        scale = visibility * max(float(clean[i].std()), 1 / 255)
        out[i] = masks[i] * np.minimum(1.0, change / scale)
    return out


SMALL_DEFECTS = {"strength": (0.15, 0.8), "colour_weights": (1.0, 1.0, 3.0), "feather": 1.5}  # faint, mostly dark


@register
class PerlinSegMethod(Method):
    name = "perlin_seg"
    summary = "segmentation on Perlin-mask anomalies filled with foreign texture (DRAEM family), native scale"
    # 256-px crops and tiles: behind the stride-2 stem the network sees 128 px of a 4x larger area
    # at the default's old cost per tile (docs/ACCURACY.md: +0.03 image AUROC over 128-px tiles)
    size, patch, batch, lr = None, 256, 16, 1e-3
    ema = 0.998         # the exported weights are the moving average (docs/ACCURACY.md: +0.05 image AUROC)
    export = 256        # the station's tile: frames of 256 px and more are never padded
    tile_overlap = 64
    detect = "probability"
    reconstructs = False
    takes_rejects = True
    network_class = UNet
    default_width = 8
    Options = PerlinSegOptions
    legacy = {"input_norm": "input_norm"}
    options: PerlinSegOptions

    def __init__(self, cfg, options, base=None):
        super().__init__(cfg, options, base)
        # (image, y, x) of the network's own false alarms on good training images; replaced whole,
        # never changed in place, because the batch thread reads it without a lock
        self.hard: list[tuple[int, int, int]] = []
        self.mining = np.random.default_rng(cfg.seed + 7919)

    def validate(self, where):
        multiple = 16 * self.options.stem  # UNet.input_multiple: four 2x2 poolings behind the stem
        if self.r.patch is not None and self.r.patch % multiple:
            raise InputError(where, "patch", f"expected a multiple of {multiple} (the crop is the station's tile, "
                                             f"the network's input), got {self.r.patch}")

    def whole_frame(self):
        # per-tile input standardisation is a statistic of the tile the network was trained on:
        # over a whole frame it would be another one, so such a model stays tiled
        o = self.options
        if not o.whole_frame or o.input_norm or self.cfg.size:
            return None
        return 16 * o.stem

    def two_scales(self):
        return self.r.export is not None and self.r.size is None and self.whole_frame() is None

    def network(self):
        o = self.options
        def unet():
            return UNet(width=self.cfg.width or self.default_width, input_norm=o.input_norm, stem=o.stem)
        return ScaleRouted(unet(), unet()) if self.coarse_scale is not None else unet()

    def exported(self, model):
        dims = MIRRORS[self.options.mirror]
        return MirrorMean(model, dims) if dims else model

    def loss(self):
        return segmentation_loss(self.options.image_loss, self.options.topk)

    def on_epoch(self, epoch, source, model, device):
        o = self.options
        if o.hard_negatives and epoch % o.mine_every == 0 and epoch > 0:
            self.hard = mine_hard_negatives(model, source.images, self.mining, device,
                                            planes=source.is_coarse(np.arange(len(source.images)))
                                            if source.coarse_from is not None else None)

    def _good_crops(self, src, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n good training crops, a share of them around the network's own false alarms, and per
        crop whether it is of a coarse view."""
        clean, coarse = src.scaled_crops(n)
        hard, r = self.hard, src.rng
        if hard:
            p = clean.shape[-1]
            for i in np.flatnonzero(r.random(n) < self.options.hard_negatives):
                k, y, x = hard[r.integers(len(hard))]
                img = src.images[k]
                y = int(np.clip(y - r.integers(p // 4, 3 * p // 4), 0, img.shape[0] - p))
                x = int(np.clip(x - r.integers(p // 4, 3 * p // 4), 0, img.shape[1] - p))
                crop = img[y:y + p, x:x + p]
                clean[i] = crop[::-1] if r.random() < 0.5 else crop
                coarse[i] = src.is_coarse(k)
        return clean, coarse

    @staticmethod
    def _reject_crops(src, n_real: int, n_paste: int, good: np.ndarray):
        """Crops of the real rejects (bags of crops for mask-less ones) and real defects pasted
        into the first n_paste good crops: (images, targets)."""
        r, p = src.rng, good.shape[-1]
        masked = [j for j in src.rejects if j.mask is not None]
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        bag = 0
        while len(xs) < n_real:
            j = src.rejects[r.integers(len(src.rejects))]
            if j.mask is not None:
                x, m = crop_around_defect(j, p, r)
                xs.append(x)
                ys.append(m)
            else:
                take = min(BAG_TILES, n_real - len(xs))
                bag += 1
                xs.extend(bag_crops(j, p, take, r))
                ys.extend([np.full((p, p), BAG - (bag - 1), np.float32)] * take)
        for i in range(n_paste if masked else 0):
            x, m = paste_defect(good[i], masked[r.integers(len(masked))], r)
            xs.append(x)
            ys.append(m)
        return xs, ys

    def make_batch(self, source, n, stage):
        o, r, src = self.options, source.rng, source
        n_real = n_paste = 0
        if src.rejects:
            n_real = int(round(n * o.reject_share))
            n_paste = int(round(n * o.paste_share)) if any(j.mask is not None for j in src.rejects) else 0
        n_good = n - n_real - n_paste
        good, coarse = self._good_crops(src, n_good + n_paste)
        if o.exposure:
            gain = np.exp(r.uniform(-o.exposure, o.exposure, (len(good), 1, 1))).astype(np.float32)
            good = np.clip(good * gain, 0, 1, out=good)  # in float32, in place: a batch is ~1M pixels
        real_x, real_y = self._reject_crops(src, n_real, n_paste, good[n_good:]) if src.rejects else ([], [])
        clean = good[:n_good]
        xs, masks = clean.copy(), np.zeros(clean.shape, np.float32)
        band_share, band_region, band_cover = o.band_settings(bool(src.rejects))
        regions = []  # crops whose target is their whole region (bands, with band_region)
        for i in range(n_good):
            u = r.random()
            if u < o.share * (1 - o.small_share):
                xs[i], masks[i] = perlin_anomaly(clean[i], src.images[r.integers(len(src.images))], r,
                                                 opacity=o.opacity, fill_odds=o.fills)
            elif u < o.share:
                v = r.random()
                if v < o.crack_share:
                    xs[i], masks[i] = crack_anomaly(clean[i], r, o.crack_grain)
                elif v < o.crack_share + band_share:
                    xs[i], band = band_anomaly(clean[i], r, band_cover)
                    if band_region:  # the region without the odd pixel whose change cancelled out
                        band = cv2.morphologyEx(band, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
                        regions.append(i)
                    masks[i] = band
                else:
                    xs[i], masks[i] = pseudo_defect(clean[i], int(r.integers(2 ** 31)), **SMALL_DEFECTS)
        if o.visibility:
            masks = visible_targets(xs, clean, masks, o.visibility, keep=regions)
        if real_x:
            xs = np.concatenate([xs, np.stack(real_x)])
            masks = np.concatenate([masks, np.stack(real_y)])
        if src.coarse_from is not None:  # the scale plane: the crops of coarse views (real rejects are native)
            plane = np.concatenate([coarse[:n_good], np.zeros(n_real, bool), coarse[n_good:]])
            xs = np.stack([xs, np.broadcast_to(plane[:, None, None], xs.shape).astype(np.float32)], axis=1)
        return xs, masks

    def recipe_detect(self):
        o = self.options
        return {"probability": {"smooth": o.smooth, "top_share": o.top_share, "sigma": o.map_sigma}}

    def recipe_training(self):
        return {"anomalies": json.dumps(to_dict(self.options), separators=(",", ":"))}
