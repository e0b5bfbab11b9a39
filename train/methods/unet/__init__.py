"""Seed 000: a U-Net trained supervised on synthetic pseudo-defects (shapes filled with an
attenuated base colour and noise; exact masks), BCE + Dice; the station thresholds its defect
probability map. The generator's settings are the config's `pseudo:` section."""

from __future__ import annotations

import json

import numpy as np

from edge.defects import pseudo_defect
from edge.schema import to_dict

from ...losses import dice_bce
from ..base import Method
from .model import UNet


class UNetMethod(Method):
    name = "unet"
    summary = "seed 000: U-Net on pseudo-defects (shapes, attenuated colours), BCE + Dice"
    size, patch, batch, lr = 256, 128, 16, 1e-3
    detect = "probability"
    reconstructs = False
    network_class = UNet

    def network(self, cfg):
        return UNet(**({"width": cfg.width} if cfg.width else {}), input_norm=cfg.input_norm)

    def loss(self, cfg):
        return dice_bce

    def make_batch(self, t, n):
        clean = t.crops(n)
        ps = t.cfg.pseudo
        seeds = t.rng.integers(0, 2 ** 31, n)
        pairs = [pseudo_defect(c, int(s), **ps.kwargs()) if t.rng.random() < ps.share
                 else (c, np.zeros(c.shape, np.uint8)) for c, s in zip(clean, seeds)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.float32)

    def recipe_training(self, cfg):
        return {"pseudo_defects": json.dumps(to_dict(cfg.pseudo), separators=(",", ":"))}


METHOD = UNetMethod()
