"""Losses of the four seeds. Images are (N, 1, H, W) in [0, 1] (dynamic range L = 1).

- ssim_components: luminance l, contrast c, structure s with an 11x11 Gaussian window.
- ssim: l * c * s (C3 = C2 / 2), the standard index.
- WeightedSSIMLoss: seed 001 eq. 7-8 and 16, (1 - SSIM) averaged with a variance weight map.
- ReNetLoss: seed 002 eq. 8, alpha * L1 + (1 - alpha) * (1 - SSIM).
- AWSSIMLoss: seed 003 eq. 7-9, 1 - (alpha l + beta c + gamma s) / (alpha + beta + gamma), whose
  Gaussian sigma grows by k per training step and resets each epoch.
- LPIPS: seed 003 eq. 10's perceptual term on AlexNet features, weights loaded from a file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

K1, K2 = 0.01, 0.03


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 2-D Gaussian (seed 003 eq. 8, centred), shape (1, 1, size, size)."""
    n = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(n ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_components(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor):
    """Per-pixel maps l, c, s ("valid" windows only, no padding artefacts at the borders)."""
    c1, c2 = K1 ** 2, K2 ** 2
    c3 = c2 / 2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = (F.conv2d(x * x, window) - mu_x ** 2).clamp_min(0)
    var_y = (F.conv2d(y * y, window) - mu_y ** 2).clamp_min(0)
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    sd_x, sd_y = torch.sqrt(var_x + 1e-12), torch.sqrt(var_y + 1e-12)
    l = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    c = (2 * sd_x * sd_y + c2) / (var_x + var_y + c2)
    s = (cov + c3) / (sd_x * sd_y + c3)
    return l, c, s


def ssim_map(x, y, window=None):
    window = gaussian_window(device=x.device, dtype=x.dtype) if window is None else window
    l, c, s = ssim_components(x, y, window)
    return l * c * s


def ssim(x, y, window=None) -> torch.Tensor:
    return ssim_map(x, y, window).mean()


class SSIMLoss(nn.Module):
    def forward(self, x, y):
        return 1 - ssim(x, y)


class L1Loss(nn.L1Loss):
    pass


class MSELoss(nn.MSELoss):
    pass


class WeightedSSIMLoss(nn.Module):
    """Seed 001: V = local variance of the source over a p x p patch (eq. 7); W = Cnorm (V + b) with
    sum W = 1 (eq. 8); loss = sum over pixels of (1 - SSIM(i, j)) W(i, j) (eq. 16; the paper's
    weight-decay term is the optimiser's). b defaults to the mean variance (the paper leaves it open)."""

    def __init__(self, patch: int = 11, bias: float | None = None):
        super().__init__()
        self.patch, self.bias = patch, bias

    def weights(self, src: torch.Tensor) -> torch.Tensor:
        p = self.patch
        mean = F.avg_pool2d(src, p, 1)
        var = (F.avg_pool2d(src * src, p, 1) - mean ** 2).clamp_min(0)
        b = var.mean(dim=(2, 3), keepdim=True) if self.bias is None else self.bias
        w = var + b + 1e-12
        return w / w.sum(dim=(2, 3), keepdim=True)

    def forward(self, rec, src):
        smap = ssim_map(rec, src)                      # (N, 1, H-10, W-10)
        w = self.weights(src)                          # (N, 1, H-p+1, W-p+1)
        h, wd = min(smap.shape[2], w.shape[2]), min(smap.shape[3], w.shape[3])
        w = w[..., :h, :wd]
        w = w / w.sum(dim=(2, 3), keepdim=True)
        return ((1 - smap[..., :h, :wd]) * w).sum(dim=(2, 3)).mean()


class ReNetLoss(nn.Module):
    """Seed 002 eq. 8: alpha * L1 + (1 - alpha) * (1 - SSIM); alpha = 0.15 for irregular textures,
    1 for regular ones."""

    def __init__(self, alpha: float = 0.15):
        super().__init__()
        self.alpha = alpha

    def forward(self, rec, src):
        return self.alpha * F.l1_loss(rec, src) + (1 - self.alpha) * (1 - ssim(rec, src))


class AWSSIMLoss(nn.Module):
    """Seed 003 eq. 7-9: additive weighted SSIM with a dynamic Gaussian sigma.

    sigma starts at sigma0 and grows by k after every training step (a batch of patches);
    start_epoch() resets it (eq. 9: the samples are reshuffled and sigma restarts each epoch)."""

    def __init__(self, alpha: float = 1 / 3, beta: float = 1 / 3, gamma: float = 1 / 3,
                 sigma0: float = 0.5, k: float = 0.01, sigma_max: float = 5.0, window: int = 11):
        super().__init__()
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.sigma0, self.k, self.sigma_max, self.size = sigma0, k, sigma_max, window
        self.sigma = sigma0

    def start_epoch(self):
        self.sigma = self.sigma0

    def step(self):
        self.sigma = min(self.sigma + self.k, self.sigma_max)

    def aw_ssim(self, x, y) -> torch.Tensor:
        window = gaussian_window(self.size, self.sigma, x.device, x.dtype)
        l, c, s = ssim_components(x, y, window)
        total = self.alpha + self.beta + self.gamma
        return ((self.alpha * l + self.beta * c + self.gamma * s) / total).mean()

    def forward(self, rec, src):
        return 1 - self.aw_ssim(rec, src)


class AlexNetFeatures(nn.Module):
    """torchvision's alexnet().features layout (so its state_dict keys load), tapping the five ReLUs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=False))
        self.taps = (1, 4, 7, 9, 11)

    def forward(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """Learned perceptual distance (Zhang et al.) on AlexNet: unit-normalise each tapped feature
    over channels, square the difference, weight channels by the learned 1x1 'lin' layers, average
    over space, sum over layers. Grey images are repeated to 3 channels and scaled to [-1, 1].

    Pretrained weights cannot be downloaded here: `weights` is a file holding one state_dict with
    the AlexNet keys (features.*) and the LPIPS linear layers (lin0..lin4 .weight, shape
    (1, C, 1, 1)). Without a file, random=True builds a randomly initialised network for testing
    the plumbing only; its values mean nothing."""

    CHANNELS = (64, 192, 384, 256, 256)
    SHIFT = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    SCALE = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]

    def __init__(self, weights: str | Path | None = None, random: bool = False):
        super().__init__()
        self.net = AlexNetFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"LPIPS weights not found: {path} (expected a state_dict with "
                                        f"features.* and lin0..lin4.weight; they cannot be downloaded here)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k.replace("lin", "lins.").replace(".model.1", "") if k.startswith("lin") else f"net.{k}": v
                     for k, v in state.items()}
            self.load_state_dict(state)
        elif not random:
            raise ValueError("LPIPS needs pretrained weights (weights=path); random=True is for tests only")
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x, y):
        x = ((x.repeat(1, 3, 1, 1) * 2 - 1) - self.SHIFT.to(x)) / self.SCALE.to(x)
        y = ((y.repeat(1, 3, 1, 1) * 2 - 1) - self.SHIFT.to(y)) / self.SCALE.to(y)
        total = 0.0
        for fx, fy, lin in zip(self.net(x), self.net(y), self.lins):
            fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)
            fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
            total = total + lin((fx - fy) ** 2).mean(dim=(2, 3))
        return total.mean()


class Stage2Loss(nn.Module):
    """Seed 003 eq. 10: alpha * AW-SSIM loss + (1 - alpha) * LPIPS, comparing the reconstruction of
    the defective image with the clean one."""

    def __init__(self, aw: AWSSIMLoss, lpips: LPIPS, alpha: float = 0.8):
        super().__init__()
        self.aw, self.lpips, self.alpha = aw, lpips, alpha

    def forward(self, rec, clean):
        return self.alpha * self.aw(rec, clean) + (1 - self.alpha) * self.lpips(rec, clean)


def _dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inter = (prob * target).sum(dim=(1, 2, 3))
    return (1 - (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)).mean()


def dice_bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed 000's segmentation loss: binary cross-entropy + Dice on the probability map."""
    prob = prob.float()
    return F.binary_cross_entropy(prob, target) + _dice(prob, target)

