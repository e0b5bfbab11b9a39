"""Seed 001: the deep convolutional autoencoder of Table 4 on whole 512x512 frames, trained with the
variance-weighted SSIM (eq. 7-8, 16); the station runs the DCT regional analysis and fusion
(eq. 17-22) on its reconstruction."""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import InputError
from edge.schema import field, rng

from ...losses import WeightedSSIMLoss
from ..base import Method, register
from .model import CAE001


@dataclass(frozen=True)
class Cae001Options:
    variance_patch: int = field(11, check=rng(3, 63), doc="side of the variance patch of the weighted SSIM (eq. 7)")


@register
class Cae001Method(Method):
    name = "cae001"
    summary = "seed 001: deep convolutional autoencoder (Table 4), variance-weighted SSIM, DCT fusion"
    size, patch, batch, lr = 512, None, 4, 1e-3
    detect = "dct_fusion"
    width_option = False
    network_class = CAE001
    Options = Cae001Options
    legacy = {"loss.variance_patch": "variance_patch"}
    options: Cae001Options

    def network(self):
        return CAE001()

    def loss(self):
        return WeightedSSIMLoss(self.options.variance_patch)

    def validate(self, where):
        if self.r.size != 512:
            raise InputError(where, "size", "expected 512: seed 001's network of Table 4 takes 1x512x512")
