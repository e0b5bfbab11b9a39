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

from typing import TYPE_CHECKING

# one line per method: importing its folder registers it (@register)
from . import perlin_seg, unet, cae001, renet_d, skip_ae  # noqa: F401  isort: skip
from .base import METHODS, Method, Resolved, Stage

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..config import TrainConfig

DEFAULT = "perlin_seg"


def create(cfg: TrainConfig, where: str = "config", base: Path | None = None) -> Method:
    """The config's method for one run (its options loaded and checked)."""
    return METHODS[cfg.method].create(cfg, where, base)


def build(name: str, **kwargs) -> torch.nn.Module:
    """The method's network class with explicit arguments (tests, benchmarks)."""
    return METHODS[name].network_class(**kwargs)


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


__all__ = ["METHODS", "DEFAULT", "Method", "Resolved", "Stage", "create", "build", "weight_bytes"]
