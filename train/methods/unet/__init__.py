"""Seed 000: a U-Net trained supervised on synthetic pseudo-defects (shapes filled with an
attenuated base colour and noise; exact masks), BCE + Dice; the station thresholds its defect
probability map. The generator's settings are `options.pseudo`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from edge.defects import pseudo_defect
from edge.errors import InputError
from edge.schema import field, rng, to_dict

from ...losses import dice_bce
from ..base import Method, register
from .model import UNet


@dataclass(frozen=True)
class Pseudo:
    """Seed 000's pseudo-defects. The paper sets the attenuation "according to the actual
    situation"; the defaults are what measured best on real defects (faint, mostly dark,
    soft-edged; docs/ACCURACY.md). The generator at full strength, as first built: strength
    [0.7, 1], colours [1, 1, 1], feather 0."""
    share: float = field(0.7, check=rng(0, 1), doc="share of training patches that get a pseudo-defect")
    strength: tuple[float, float] = field((0.15, 0.8), doc="range of the base colour's weight at the defect's "
                                                           "centre (0.3 = a faint stain, 1 = the pure colour)")
    size: tuple[float, float] = field((0.04, 0.18), doc="defect size range, a share of the patch side")
    colours: tuple[float, float, float] = field((1.0, 1.0, 3.0), doc="odds of white, grey and black defects")
    noise: float = field(0.04, check=rng(0, 1), doc="std of the noise added to the base colour")
    feather: float = field(1.5, check=rng(0, 20), doc="Gaussian sigma (pixels) that softens the defect's edge")
    shapes: tuple[float, float, float, float, float, float] = field(
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.0), doc="odds of rectangle, line, triangle, polygon, bezier blob (seed 000) "
                                            "and band (a strip across the patch: a brightness step)")
    margin: float = field(0.15, check=rng(0, 0.5), doc="defect centres stay this share of the side from the "
                                                       "border; 0 lets defects run off the edge")

    def validate(self, where, prefix):
        for key, pair in (("strength", self.strength), ("size", self.size)):
            if not (0 < pair[0] <= pair[1] <= 1):
                raise InputError(where, f"{prefix}.{key}", f"expected 0 < low <= high <= 1, got {list(pair)}")
        for key, odds in (("colours", self.colours), ("shapes", self.shapes)):
            if min(odds) < 0 or sum(odds) <= 0:
                raise InputError(where, f"{prefix}.{key}", f"expected {len(odds)} odds >= 0, not all 0, got {list(odds)}")

    def kwargs(self) -> dict:
        """pseudo_defect's keyword arguments."""
        return {"strength": self.strength, "size_range": self.size, "noise": self.noise, "feather": self.feather,
                "margin": self.margin, "shape_weights": self.shapes, "colour_weights": self.colours}


INPUT_NORM_DOC = ("standardise each input tile inside the network (zero mean, unit std), so exposure differences "
                  "do not shift the input")


@dataclass(frozen=True)
class UNetOptions:
    pseudo: Pseudo = field(factory=Pseudo, doc="seed 000's pseudo-defect generator")
    input_norm: bool = field(False, doc=INPUT_NORM_DOC)


@register
class UNetMethod(Method):
    name = "unet"
    summary = "seed 000: U-Net on pseudo-defects (shapes, attenuated colours), BCE + Dice"
    size, patch, batch, lr = 256, 128, 16, 1e-3
    detect = "probability"
    reconstructs = False
    network_class = UNet
    Options = UNetOptions
    legacy = {"pseudo": "pseudo", "input_norm": "input_norm"}
    options: UNetOptions

    def network(self):
        return UNet(**({"width": self.cfg.width} if self.cfg.width else {}), input_norm=self.options.input_norm)

    def loss(self):
        return dice_bce

    def make_batch(self, source, n, stage):
        clean = source.crops(n)
        ps = self.options.pseudo
        seeds = source.rng.integers(0, 2 ** 31, n)
        pairs = [pseudo_defect(c, int(s), **ps.kwargs()) if source.rng.random() < ps.share
                 else (c, np.zeros(c.shape, np.uint8)) for c, s in zip(clean, seeds)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.float32)

    def recipe_training(self):
        return {"pseudo_defects": json.dumps(to_dict(self.options.pseudo), separators=(",", ":"))}
