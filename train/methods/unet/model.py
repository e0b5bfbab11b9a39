"""Seed 000's segmentation network: a U-Net with a single-channel defect probability output,
trained supervised on synthetic pseudo-defects. Four levels, double 3x3 conv + BN + ReLU per
level, max-pool down, transposed-conv up, skip concatenation at every level (the U-Net design)."""

from __future__ import annotations

import torch
from torch import nn


def _double(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    input_multiple = 16

    def __init__(self, width: int = 16, input_norm: bool = False, stem: int = 1):
        super().__init__()
        # stem > 1: a learned stride-`stem` convolution in front and a bilinear upsampling behind,
        # so the U-Net runs at 1/stem of the resolution: stem^2 less work per pixel and a
        # receptive field stem times larger, while the strided kernel still sees every pixel
        self.stem = None
        if stem > 1:
            self.stem = nn.Sequential(nn.Conv2d(1, width, 2 * stem, stem, stem // 2), nn.BatchNorm2d(width),
                                      nn.ReLU(inplace=True))
            self.input_multiple = 16 * stem
        # per-tile standardisation inside the network (exported with it): exposure differences
        # between parts or cameras no longer shift what the network sees
        self.input_norm = input_norm
        c = [width * 2 ** i for i in range(5)]
        self.downs = nn.ModuleList([_double(width if stem > 1 else 1, c[0])] + [_double(c[i], c[i + 1]) for i in range(4)])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(c[i + 1], c[i], 2, 2) for i in reversed(range(4)))
        self.merges = nn.ModuleList(_double(2 * c[i], c[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(c[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = (x - mean).square().mean(dim=(2, 3), keepdim=True).add(1e-4).sqrt()
            x = (x - mean) / std
        size = x.shape[-2:]
        if self.stem is not None:
            x = self.stem(x)
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.ups, self.merges):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        x = self.head(x)
        # the maps as the channels of one image, (1, N, h, w): the same numbers, but OpenVINO's CPU
        # plugin keeps a one-channel (N, 1, h, w) map in its 16-channel blocked layout, where the
        # upsampling and the sigmoid did 16 times their work (13 of 45 ms a 512x512 frame on an AMD
        # EPYC, docs/BENCHMARKS.md "The network's last layers")
        n = x.shape[0]
        x = x.reshape(1, n, x.shape[2], x.shape[3])
        if self.stem is not None:
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x).reshape(n, 1, size[0], size[1])


class ScaleRouted(nn.Module):
    """Two networks of one part, one per scale, behind one input: (N, 2, H, W), the grey tile and
    its scale plane (0: the frame's own tiles, 1: the coarse frame's; edge.preprocess). Training
    sends each crop through its scale's network only, so each learns what is normal at its scale
    (one network for both takes a region that is normal at one scale, floor between two ribs, for
    normal at the other, where it is a missing rib). Evaluated, both run on every tile and the
    plane picks the map: no data-dependent shapes in the exported graph, twice the work per tile."""

    def __init__(self, native: nn.Module, coarse: nn.Module):
        super().__init__()
        self.nets = nn.ModuleList([native, coarse])
        self.input_multiple = getattr(native, "input_multiple", 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, plane = x[:, :1], x[:, 1:2, :1, :1]
        if not self.training:
            return self.nets[0](image) * (1 - plane) + self.nets[1](image) * plane
        coarse = plane.flatten() > 0.5
        parts = [(net, pick) for net, pick in zip(self.nets, (~coarse, coarse)) if bool(pick.any())]
        if len(parts) == 1:
            return parts[0][0](image)
        out = torch.empty_like(image)
        for net, pick in parts:
            out[pick] = net(image[pick]).to(out.dtype)
        return out
