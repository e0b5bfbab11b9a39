"""Seed 001: the deep convolutional autoencoder of Table 4 on whole 512x512 frames, trained with the
variance-weighted SSIM (eq. 7-8, 16); the station runs the DCT regional analysis and fusion
(eq. 17-22) on its reconstruction."""

from __future__ import annotations

from edge.errors import InputError

from ...losses import WeightedSSIMLoss
from ..base import Method
from .model import CAE001


class Cae001Method(Method):
    name = "cae001"
    summary = "seed 001: deep convolutional autoencoder (Table 4), variance-weighted SSIM, DCT fusion"
    size, patch, batch, lr = 512, None, 4, 1e-3
    detect = "dct_fusion"
    width_option = False
    network_class = CAE001

    def network(self, cfg):
        return CAE001()

    def loss(self, cfg):
        return WeightedSSIMLoss(cfg.loss.variance_patch)

    def validate(self, cfg, where):
        if (cfg.size or self.size) != 512:
            raise InputError(where, "size", "expected 512: seed 001's network of Table 4 takes 1x512x512")


METHOD = Cae001Method()
