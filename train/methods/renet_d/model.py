"""Seed 002's ReNet-D: a light, fully convolutional reconstruction network (< 1 MB of weights).

Input: parallel 1x1, 3x3 and 5x5 convolutions (multi-scale features), concatenated.
Encoder: four conv modules (conv, BN, ReLU); the first three also max-pool (/2); kernels 5x5 for
the first three, 3x3 for the last.
Decoder: four deconv modules (transposed conv, BN, ReLU); the last three upsample (x2), mirroring
the pooling.
Output: three transposed convolutions of different kernel sizes (1x1, 3x3, 5x5) on the decoder
output, fused (summed) into the reconstruction, then a sigmoid.
Trained on 32x32 patches (16 and 64 selectable); fully convolutional, so it runs on whole frames
whose sides are multiples of 8. Channel widths are not given in the paper; these keep it < 1 MB.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(conv, cout, pool=False):
    layers = [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*(layers + [nn.MaxPool2d(2)] if pool else layers))


class ReNetD(nn.Module):
    input_multiple = 8

    def __init__(self, width: int = 12):
        super().__init__()
        w = width
        self.inputs = nn.ModuleList(nn.Conv2d(1, w, k, 1, k // 2) for k in (1, 3, 5))
        c = [3 * w, 2 * w, 3 * w, 4 * w, 4 * w]
        self.encoder = nn.Sequential(
            _block(nn.Conv2d(c[0], c[1], 5, 1, 2), c[1], pool=True),
            _block(nn.Conv2d(c[1], c[2], 5, 1, 2), c[2], pool=True),
            _block(nn.Conv2d(c[2], c[3], 5, 1, 2), c[3], pool=True),
            _block(nn.Conv2d(c[3], c[4], 3, 1, 1), c[4]),
        )
        self.decoder = nn.Sequential(
            _block(nn.ConvTranspose2d(c[4], c[3], 3, 1, 1), c[3]),
            _block(nn.ConvTranspose2d(c[3], c[2], 4, 2, 1), c[2]),
            _block(nn.ConvTranspose2d(c[2], c[1], 4, 2, 1), c[1]),
            _block(nn.ConvTranspose2d(c[1], w, 4, 2, 1), w),
        )
        self.outputs = nn.ModuleList(nn.ConvTranspose2d(w, 1, k, 1, k // 2) for k in (1, 3, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.cat([conv(x) for conv in self.inputs], dim=1)
        f = self.decoder(self.encoder(f))
        return torch.sigmoid(sum(out(f) for out in self.outputs))
