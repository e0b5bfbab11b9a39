"""Training methods, one folder each (network, defaults, synthetic data, loss, export shape) behind
train.methods.base.Method. `perlin_seg` is edge-train's default (docs/ACCURACY.md); the four seed
papers' methods are kept as they were measured.

| name       | paper          | learns from                                  | output                 |
|------------|----------------|----------------------------------------------|------------------------|
| perlin_seg | DRAEM family   | good images + Perlin-mask anomalies          | defect probability     |
| unet       | seed 000       | good images + seed 000 pseudo-defects        | defect probability     |
| cae001     | seed 001       | good images (variance-weighted SSIM)         | reconstruction         |
| renet_d    | seed 002       | good image patches (L1 + SSIM)               | reconstruction         |
| skip_ae    | seed 003       | good images, then ADGA defects (AW-SSIM)     | reconstruction         |
"""

from __future__ import annotations

from .base import Method, Stage
from .cae001 import METHOD as CAE001
from .perlin_seg import METHOD as PERLIN_SEG
from .renet_d import METHOD as RENET_D
from .skip_ae import METHOD as SKIP_AE
from .unet import METHOD as UNET

METHODS: dict[str, Method] = {m.name: m for m in (PERLIN_SEG, UNET, CAE001, RENET_D, SKIP_AE)}
DEFAULT = PERLIN_SEG.name


def get(name: str) -> Method:
    return METHODS[name]


def build(name: str, **kwargs) -> "torch.nn.Module":  # noqa: F821
    """The method's network class with explicit arguments (tests, benchmarks)."""
    return METHODS[name].network_class(**kwargs)


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


__all__ = ["METHODS", "DEFAULT", "Method", "Stage", "get", "build", "weight_bytes"]
