"""perlin_seg: a segmentation network that learns what does not belong on the surface from two
kinds of synthetic anomaly on good images at their native scale: seed 000's pseudo-defects
(faint, mostly dark shapes and lines) and anomalies of the DRAEM family (Zavrtanik et al., ICCV
2021: Perlin-noise masks filled with texture that does not belong there; anomalies.py), for
large, irregular changes of texture and brightness. Seed 000's U-Net is the network; BCE + Dice.
The station tiles frames of any size and aspect ratio into overlapping tiles of `export` pixels
(smaller frames are reflect-padded, as in training) and takes the map's peak as the image score
(`smooth` > 1 filters it first; docs/ACCURACY.md measured the raw peak better on the tiles).

Options (the config's `options:` section) are this folder's Options; the defaults are what the
method is judged by (docs/ACCURACY.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from edge.errors import InputError
from edge.schema import field, load, rng, to_dict

from ...defects import pseudo_defect
from ...losses import dice_bce
from ..base import Method
from ..unet.model import UNet
from .anomalies import FILL_ODDS, FILLS, perlin_anomaly


@dataclass(frozen=True)
class Options:
    share: float = field(0.7, check=rng(0, 1), doc="share of training crops that get an anomaly")
    small_share: float = field(0.7, check=rng(0, 1), doc="of those, the share drawn as seed 000 pseudo-defects "
                                                         "(small spots and lines) instead of Perlin anomalies")
    opacity: tuple[float, float] = field((0.3, 1.0), doc="range of the Perlin anomaly's blend weight")
    fills: tuple[float, float, float, float] = field(FILL_ODDS, doc="odds of the Perlin anomaly's fills "
                                                                    + ", ".join(FILLS))
    exposure: float = field(0.1, check=rng(0, 1), doc="good crops' brightness is scaled by exp(+-exposure), so "
                                                      "exposure drift between parts is not learned as a defect")
    stem: int = field(1, check=lambda v: None if v in (1, 2, 4) else "1, 2 or 4",
                      doc="the network runs at 1/stem of the resolution behind a learned strided convolution "
                          "(stem^2 less work, a stem times larger view; 1 = full resolution)")
    smooth: int = field(1, check=lambda v: None if v >= 1 and v % 2 else "an odd integer >= 1",
                        doc="side of the mean filter on the probability map before the image score's peak")

    def validate(self, where, prefix):
        if not 0 <= self.opacity[0] <= self.opacity[1] <= 1:
            raise InputError(where, f"{prefix}.opacity", f"expected 0 <= low <= high <= 1, got {list(self.opacity)}")
        if min(self.fills) < 0 or sum(self.fills) <= 0:
            raise InputError(where, f"{prefix}.fills", f"expected {len(FILLS)} odds >= 0, not all 0")


SMALL_DEFECTS = {"strength": (0.15, 0.8), "colour_weights": (1.0, 1.0, 3.0), "feather": 1.5}  # faint, mostly dark


class PerlinSegMethod(Method):
    name = "perlin_seg"
    summary = "segmentation on Perlin-mask anomalies filled with foreign texture (DRAEM family), native scale"
    size, patch, batch, lr = None, 128, 16, 1e-3
    export = 128        # the station's tile: frames of 128 px and more are never padded
    tile_overlap = 32
    detect = "probability"
    reconstructs = False
    network_class = UNet
    default_width = 8

    def options(self, cfg, where: str = "config") -> Options:
        return load(Options, cfg.options, where, "options")

    def network(self, cfg):
        return UNet(width=cfg.width or self.default_width, input_norm=cfg.input_norm, stem=self.options(cfg).stem)

    def loss(self, cfg):
        return dice_bce

    def make_batch(self, t, n):
        o = t.state.setdefault("options", self.options(t.cfg))
        r = t.rng
        clean = t.crops(n)
        if o.exposure:
            clean = np.clip(clean * np.exp(r.uniform(-o.exposure, o.exposure, (n, 1, 1))), 0, 1).astype(np.float32)
        xs, masks = clean.copy(), np.zeros(clean.shape, np.float32)
        for i in range(n):
            u = r.random()
            if u < o.share * (1 - o.small_share):
                xs[i], masks[i] = perlin_anomaly(clean[i], t.images[r.integers(len(t.images))], r,
                                                 opacity=o.opacity, fill_odds=o.fills)
            elif u < o.share:
                xs[i], masks[i] = pseudo_defect(clean[i], int(r.integers(2 ** 31)), **SMALL_DEFECTS)
        return xs, masks

    def recipe_detect(self, cfg):
        return {"probability": {"smooth": self.options(cfg).smooth}}

    def recipe_training(self, cfg):
        return {"anomalies": json.dumps(to_dict(self.options(cfg)), separators=(",", ":"))}


METHOD = PerlinSegMethod()
