"""Seed 003: the autoencoder with two skip connections, in two stages: stage 1 reconstructs good
128x128 patches with AW-SSIM (eq. 7-9, its Gaussian sigma growing per step and reset per epoch);
stage 2, from stage 1's weights, turns ADGA cut-and-paste defects (eq. 1) back into the clean
patch with alpha * AW-SSIM + (1 - alpha) * LPIPS (eq. 10)."""

from __future__ import annotations

import numpy as np

from edge.defects import adga
from edge.errors import InputError

from ...losses import LPIPS, AWSSIMLoss, Stage2Loss
from ..base import Method, Stage
from .model import SkipAE


class SkipAEMethod(Method):
    name = "skip_ae"
    summary = "seed 003: autoencoder with two skips, AW-SSIM, stage 2 on ADGA defects"
    size, patch, batch, lr = 256, 128, 16, 1e-3
    network_class = SkipAE

    def network(self, cfg):
        return SkipAE(**({"width": cfg.width} if cfg.width else {}))

    def _aw(self, t):
        if "aw" not in t.state:
            c = t.cfg.loss
            t.state["aw"] = AWSSIMLoss(*c.aw_weights, sigma0=c.sigma0, k=c.sigma_k)
        return t.state["aw"]

    def stages(self, t, budget_s):
        cfg, aw = t.cfg, self._aw(t)
        if not cfg.stage2.epochs:
            return [Stage(1, cfg.epochs, budget_s, aw)]
        s2 = cfg.stage2
        lpips = None if s2.alpha >= 1 else LPIPS(s2.lpips_weights).to(t.device)
        loss2 = aw if lpips is None else Stage2Loss(aw, lpips, s2.alpha)
        return [Stage(1, cfg.epochs, budget_s * (1 - s2.time_share), aw), Stage(2, s2.epochs, budget_s, loss2)]

    def make_batch(self, t, n):
        clean = t.crops(n)
        if t.stage != 2:
            return clean, clean
        sources = t.crops(n)
        seeds = t.rng.integers(0, 2 ** 31, n)
        return np.stack([adga(c, s, int(k))[0] for c, s, k in zip(clean, sources, seeds)]), clean

    def on_epoch(self, t):
        self._aw(t).start_epoch()

    def on_step(self, t):
        self._aw(t).step()

    def validate(self, cfg, where):
        if cfg.stage2.epochs and cfg.stage2.alpha < 1 and cfg.stage2.lpips_weights is None:
            raise InputError(where, "stage2.lpips_weights",
                             "expected a file of pretrained AlexNet/LPIPS weights (they cannot be downloaded here); "
                             "or set stage2.alpha: 1.0 to train stage 2 on AW-SSIM alone")


METHOD = SkipAEMethod()
