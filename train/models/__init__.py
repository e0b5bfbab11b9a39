"""The four seed methods' networks. Each takes and returns (N, 1, H, W) float tensors.

| name     | paper    | input                          | output                      |
|----------|----------|--------------------------------|-----------------------------|
| cae001   | seed 001 | 1x512x512 exactly (Table 4)    | reconstruction              |
| renet_d  | seed 002 | any size divisible by 8        | reconstruction              |
| skip_ae  | seed 003 | any size divisible by 16       | reconstruction              |
| unet     | seed 000 | any size divisible by 16       | defect probability (sigmoid)|
"""

from __future__ import annotations

from .cae001 import CAE001
from .renet_d import ReNetD
from .skip_ae import SkipAE
from .unet import UNet

MODELS = {"cae001": CAE001, "renet_d": ReNetD, "skip_ae": SkipAE, "unet": UNet}
RECONSTRUCTION = {"cae001", "renet_d", "skip_ae"}


def build(name: str, **kwargs):
    return MODELS[name](**kwargs)


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())
