"""Seed 002: ReNet-D, a light multi-scale reconstruction network trained on 32x32 patches with
alpha * L1 + (1 - alpha)(1 - SSIM) (eq. 8), exported for 32x32 blocks as the paper runs it; the
station reads it with the squared residual, a mean filter and an adaptive threshold."""

from __future__ import annotations

from ...losses import ReNetLoss
from ..base import Method
from .model import ReNetD


class ReNetDMethod(Method):
    name = "renet_d"
    summary = "seed 002: ReNet-D on patches, L1 + SSIM, squared residual"
    size, patch, batch, lr = 256, 32, 64, 2e-3
    network_class = ReNetD

    def network(self, cfg):
        return ReNetD(**({"width": cfg.width} if cfg.width else {}))

    def export_side(self, r):
        return r["patch"]  # frames are tiled into blocks by the station

    def loss(self, cfg):
        return ReNetLoss(cfg.loss.alpha)


METHOD = ReNetDMethod()
