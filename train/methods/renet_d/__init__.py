"""Seed 002: ReNet-D, a light multi-scale reconstruction network trained on 32x32 patches with
alpha * L1 + (1 - alpha)(1 - SSIM) (eq. 8), exported for 32x32 blocks as the paper runs it; the
station reads it with the squared residual, a mean filter and an adaptive threshold."""

from __future__ import annotations

from dataclasses import dataclass

from edge.schema import field, rng

from ...losses import ReNetLoss
from ..base import Method, register
from .model import ReNetD


@dataclass(frozen=True)
class ReNetDOptions:
    alpha: float = field(0.15, check=rng(0, 1), doc="the loss: alpha * L1 + (1 - alpha)(1 - SSIM) (eq. 8)")


@register
class ReNetDMethod(Method):
    name = "renet_d"
    summary = "seed 002: ReNet-D on patches, L1 + SSIM, squared residual"
    size, patch, batch, lr = 256, 32, 64, 2e-3
    network_class = ReNetD
    Options = ReNetDOptions
    legacy = {"loss.alpha": "alpha"}
    options: ReNetDOptions

    def network(self):
        return ReNetD(**({"width": self.cfg.width} if self.cfg.width else {}))

    def export_side(self):
        assert self.r.patch is not None
        return self.r.patch  # frames are tiled into blocks by the station

    def loss(self):
        return ReNetLoss(self.options.alpha)
