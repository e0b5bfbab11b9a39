"""Seed 001's deep convolutional autoencoder, exactly as its Table 4 (Appendix) and section 2.3.1.

E_pre: conv 32x5x5 s2 p2, BN, LeakyReLU(0.2)                       1x512x512 -> 32x256x256
ConvBlock k (k = 1..4): conv 3x3 s2 p1, BN, LReLU; conv 3x3 s1 p1, BN, LReLU
    channels 64, 128, 256, 256                                    -> 256x16x16
E_post: conv 200x8x8 s1 p0, BN                                    -> 200x9x9 (the code)
D_pre: tconv 256x8x8 s1 p0, BN, LReLU ("does the opposite")        -> 256x16x16
DeconvBlock k: tconv 3x3 s1 p1, BN, LReLU; tconv 3x3 s2 p1 (+1 output padding), BN, LReLU
    channels 256, 128, 64, 32                                      -> 32x256x256
D_post: tconv 1x5x5 s2 p2 (+1 output padding)                      -> 1x512x512

The paper does not say what follows D_post; a sigmoid keeps the output in the input's [0, 1].
The output padding of the stride-2 transposed convolutions is what makes the feature map sizes
"strictly symmetrical", as the paper states.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin, cout, k, s, p):
    return [nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


def _tconv(cin, cout, k, s, p, op=0, act=True):
    layers = [nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op), nn.BatchNorm2d(cout)]
    return layers + ([nn.LeakyReLU(0.2, inplace=True)] if act else [])


class CAE001(nn.Module):
    input_size = (512, 512)

    def __init__(self, code_channels: int = 200):
        super().__init__()
        enc = [*_conv(1, 32, 5, 2, 2)]                                      # E_pre
        for cin, cout in ((32, 64), (64, 128), (128, 256), (256, 256)):     # ConvBlock1..4
            enc += [*_conv(cin, cout, 3, 2, 1), *_conv(cout, cout, 3, 1, 1)]
        enc += [nn.Conv2d(256, code_channels, 8, 1, 0), nn.BatchNorm2d(code_channels)]  # E_post
        dec = [*_tconv(code_channels, 256, 8, 1, 0)]                        # D_pre
        for cin, cout in ((256, 256), (256, 128), (128, 64), (64, 32)):     # DeconvBlock1..4
            dec += [*_tconv(cin, cin, 3, 1, 1), *_tconv(cin, cout, 3, 2, 1, op=1)]
        dec += [nn.ConvTranspose2d(32, 1, 5, 2, 2, output_padding=1)]       # D_post
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))

    def layer_outputs(self, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
        """(Table 4 layer name, output shape without batch) for the shape test."""
        names = (["E_pre"] + [f"ConvBlock{i}" for i in range(1, 5)] + ["E_post", "D_pre"]
                 + [f"DeconvBlock{i}" for i in range(1, 5)] + ["D_post"])
        # layers per named block: E_pre 3, ConvBlock 6, E_post 2 | D_pre 3, DeconvBlock 6, D_post 1
        sizes = [3, 6, 6, 6, 6, 2, 3, 6, 6, 6, 6, 1]
        modules = list(self.encoder) + list(self.decoder)
        out, i = [], 0
        for name, n in zip(names, sizes):
            for m in modules[i:i + n]:
                x = m(x)
            i += n
            out.append((name, tuple(x.shape[1:])))
        return out
