"""Seed 003's autoencoder: convolutional encoder, transposed-convolution decoder, BN and an
activation after every layer, and exactly two skip connections (the paper found two optimal;
skips at every level let defects through). Trained on 128x128 patches.

Encoder: 4 stride-2 conv layers 1->32->64->128->256 (H/16). Decoder: 4 stride-2 transposed
convs 256->128->64->32->16, then a 3x3 conv to one channel and a sigmoid. The two skips join
encoder features at H/4 and H/2 to the decoder (added), leaving the finest level (H) and the
bottleneck unbridged so defects are not copied through.
"""

from __future__ import annotations

import torch
from torch import nn


def _down(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _up(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SkipAE(nn.Module):
    input_multiple = 16
    skips = 2

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.e1, self.e2, self.e3, self.e4 = _down(1, w), _down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, 8 * w)
        self.d4, self.d3, self.d2, self.d1 = _up(8 * w, 4 * w), _up(4 * w, 2 * w), _up(2 * w, w), _up(w, w // 2)
        self.out = nn.Conv2d(w // 2, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.e1(x)      # H/2
        h2 = self.e2(h1)     # H/4
        h3 = self.e3(h2)     # H/8
        h4 = self.e4(h3)     # H/16
        y = self.d4(h4)      # H/8 (no skip from h3)
        y = self.d3(y) + h2  # H/4 skip 1
        y = self.d2(y) + h1  # H/2 skip 2
        y = self.d1(y)       # H
        return torch.sigmoid(self.out(y))
