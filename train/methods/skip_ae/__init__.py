"""Seed 003: the autoencoder with two skip connections, in two stages: stage 1 reconstructs good
128x128 patches with AW-SSIM (eq. 7-9, its Gaussian sigma growing per step and reset per epoch);
stage 2, from stage 1's weights, turns ADGA cut-and-paste defects (eq. 1) back into the clean
patch with alpha * AW-SSIM + (1 - alpha) * LPIPS (eq. 10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.defects import adga
from edge.errors import InputError
from edge.schema import field, rng

from ...losses import LPIPS, AWSSIMLoss, Stage2Loss
from ..base import Method, Stage, register
from .model import SkipAE


@dataclass(frozen=True)
class Stage2:
    epochs: int = field(0, check=rng(0, 10_000), doc="stage 2 epochs on ADGA defects; 0 = none")
    alpha: float = field(0.8, check=rng(0, 1), doc="eq. 10: alpha * AW-SSIM + (1 - alpha) * LPIPS")
    lpips_weights: str | None = field(None, doc="AlexNet+LPIPS state_dict file (relative to the config's folder); "
                                                "needed when alpha < 1")
    time_share: float = field(0.3, check=rng(0, 0.9), doc="share of time_budget_min kept for stage 2")


@dataclass(frozen=True)
class SkipAEOptions:
    aw_weights: tuple[float, float, float] = field((1 / 3, 1 / 3, 1 / 3), doc="AW-SSIM: luminance, contrast, structure")
    sigma0: float = field(0.5, check=rng(0.1, 10), doc="AW-SSIM: initial Gaussian sigma")
    sigma_k: float = field(0.005, check=rng(0, 1), doc="AW-SSIM: sigma increment per step (reset per epoch)")
    stage2: Stage2 = field(factory=Stage2)


@register
class SkipAEMethod(Method):
    name = "skip_ae"
    summary = "seed 003: autoencoder with two skips, AW-SSIM, stage 2 on ADGA defects"
    size, patch, batch, lr = 256, 128, 16, 1e-3
    network_class = SkipAE
    Options = SkipAEOptions
    legacy = {"loss.aw_weights": "aw_weights", "loss.sigma0": "sigma0", "loss.sigma_k": "sigma_k", "stage2": "stage2"}
    options: SkipAEOptions

    def __init__(self, cfg, options, base=None):
        super().__init__(cfg, options, base)
        o = options
        self.aw = AWSSIMLoss(*o.aw_weights, sigma0=o.sigma0, k=o.sigma_k)  # its sigma schedule is the run's state

    def network(self):
        return SkipAE(**({"width": self.cfg.width} if self.cfg.width else {}))

    def loss(self):
        return self.aw

    def stages(self, budget_s, device):
        s2 = self.options.stage2
        if not s2.epochs:
            return [Stage(1, self.cfg.epochs, budget_s, self.aw)]
        lpips = None if s2.alpha >= 1 else LPIPS(str(self.path(s2.lpips_weights))).to(device)
        loss2 = self.aw if lpips is None else Stage2Loss(self.aw, lpips, s2.alpha)
        return [Stage(1, self.cfg.epochs, budget_s * (1 - s2.time_share), self.aw), Stage(2, s2.epochs, budget_s, loss2)]

    def make_batch(self, source, n, stage):
        clean = source.crops(n)
        if stage != 2:
            return clean, clean
        sources = source.crops(n)
        seeds = source.rng.integers(0, 2 ** 31, n)
        return np.stack([adga(c, s, int(k))[0] for c, s, k in zip(clean, sources, seeds)]), clean

    def on_epoch(self, epoch, source, model, device):
        self.aw.start_epoch()

    def on_step(self):
        self.aw.step()

    def validate(self, where):
        s2 = self.options.stage2
        if s2.epochs and s2.alpha < 1:
            if s2.lpips_weights is None:
                raise InputError(where, "options.stage2.lpips_weights",
                                 "expected a file of pretrained AlexNet/LPIPS weights (they cannot be downloaded "
                                 "here); or set options.stage2.alpha: 1.0 to train stage 2 on AW-SSIM alone")
            if self.base is not None and not self.path(s2.lpips_weights).is_file():
                raise InputError(where, "options.stage2.lpips_weights", f"file not found: {self.path(s2.lpips_weights)}")
