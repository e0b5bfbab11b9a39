"""edge-train's training loop for the four seed methods.

Batches are drawn at random from the good images held in memory (patches for ReNet-D, the skip
autoencoder and the U-Net; whole 512x512 frames for seed 001's CAE), with random flips. The
U-Net learns from seed 000 pseudo-defects; the skip autoencoder trains in seed 003's two stages
(stage 1 good images with AW-SSIM; stage 2 from stage-1 weights on ADGA defects, reconstructing
the clean image with alpha * AW-SSIM + (1 - alpha) * LPIPS). Adam, a fixed seed, a wall-clock
budget, a checkpoint per epoch (resumed automatically), a loss curve. Under torchrun each rank
draws its own batches and DDP averages the gradients; rank 0 writes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .config import TrainConfig
from .data import good_images, load_gray, random_patches, split_holdout
from .defects import adga, pseudo_defect
from .losses import LPIPS, AWSSIMLoss, ReNetLoss, Stage2Loss, WeightedSSIMLoss
from .models import build, weight_bytes


class Progress:
    """A one-line progress display on stderr (a line per epoch when not a terminal)."""

    def __init__(self, stream=None):
        stream = stream or sys.stderr  # looked up now: stderr may have been replaced since import
        self.stream, self.tty = stream, stream.isatty()

    def update(self, text: str, final: bool = False):
        if self.tty:
            self.stream.write("\r" + text.ljust(110) + ("\n" if final else ""))
            self.stream.flush()
        elif final:
            print(text, file=self.stream, flush=True)


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _dice_bce(prob, target):
    bce = F.binary_cross_entropy(prob, target)
    inter = (prob * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


class Trainer:
    def __init__(self, cfg: TrainConfig, base: Path, log=None):
        self.cfg, self.log = cfg, log or sys.stderr
        self.r = cfg.resolved()
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.device = _device(cfg)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed + self.rank)
        self.rng = np.random.default_rng(cfg.seed + self.rank)
        data = Path(cfg.data) if Path(cfg.data).is_absolute() else base / cfg.data
        self.data_root = data
        self.out = Path(cfg.out) if Path(cfg.out).is_absolute() else base / cfg.out
        self.out.mkdir(parents=True, exist_ok=True)
        files = good_images(data)
        self.train_files, self.holdout_files = split_holdout(files, cfg.holdout)
        self.images = np.stack([load_gray(f, self.r["size"]) for f in self.train_files])
        kwargs = {"width": cfg.width} if cfg.width else {}
        if cfg.input_norm:
            kwargs["input_norm"] = True
        self.model = build(cfg.method, **kwargs).to(self.device)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.r["lr"])
        self.history: list[dict] = []
        self.stage, self.epoch, self.elapsed = 1, 0, 0.0
        self.aw = AWSSIMLoss(*cfg.loss.aw_weights, sigma0=cfg.loss.sigma0, k=cfg.loss.sigma_k)
        self.loss_fn = {"weighted_ssim": WeightedSSIMLoss(cfg.loss.variance_patch), "renet": ReNetLoss(cfg.loss.alpha),
                        "aw_ssim": self.aw, "bce_dice": None}[self.r["loss"]]
        self._resume()

    # -- batches ----------------------------------------------------------------------------------
    def _crops(self, n: int) -> np.ndarray:
        p = self.r["patch"]
        if p is None:
            crops = self.images[self.rng.integers(0, len(self.images), n)].copy()
        else:
            crops = random_patches(self.images, p, n, self.rng)
        flip = self.rng.random((n, 2)) < 0.5
        for i in range(n):
            if flip[i, 0]:
                crops[i] = crops[i, :, ::-1]
            if flip[i, 1]:
                crops[i] = crops[i, ::-1, :]
        return np.ascontiguousarray(crops)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None].to(self.device)

    def _batch(self):
        """(input, target) tensors for this method and stage."""
        n = self.r["batch"]
        clean = self._crops(n)
        if self.cfg.method == "unet":
            seeds = self.rng.integers(0, 2 ** 31, n)
            ps = self.cfg.pseudo
            pairs = [pseudo_defect(c, int(s), **ps.kwargs()) if self.rng.random() < ps.share
                     else (c, np.zeros(c.shape, np.uint8)) for c, s in zip(clean, seeds)]
            return self._tensor(np.stack([p[0] for p in pairs])), self._tensor(np.stack([p[1] for p in pairs]))
        if self.stage == 2:
            sources = self._crops(n)
            seeds = self.rng.integers(0, 2 ** 31, n)
            defective = np.stack([adga(c, s, int(k))[0] for c, s, k in zip(clean, sources, seeds)])
            return self._tensor(defective), self._tensor(clean)
        x = self._tensor(clean)
        return x, x

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    def _resume(self):
        if not self.checkpoint.is_file():
            return
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.history, self.stage, self.epoch, self.elapsed = state["history"], state["stage"], state["epoch"], state["elapsed"]
        self.rng = np.random.default_rng(state["rng_seed"])
        print(f"edge-train: resumed from {self.checkpoint} (stage {self.stage}, epoch {self.epoch}, "
              f"{self.elapsed / 60:.1f} min used)", file=self.log)

    def _save(self):
        if self.rank != 0:
            return
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "history": self.history,
                    "stage": self.stage, "epoch": self.epoch, "elapsed": self.elapsed,
                    "rng_seed": int(self.rng.integers(0, 2 ** 31)), "method": self.cfg.method}, tmp)
        tmp.replace(self.checkpoint)

    # -- loop -------------------------------------------------------------------------------------
    def _clock(self) -> float:
        """Training seconds so far, the same on every rank (the slowest rank's), so all ranks stop
        at the same step and use the same learning rate."""
        t = torch.tensor([self.elapsed], dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def _set_lr(self, clock: float, epoch_share: float):
        """Cosine decay to lr_floor x lr over the run (time budget or epochs, whichever ends first)."""
        if self.cfg.lr_schedule == "cosine":
            progress = min(1.0, max(clock / (self.cfg.time_budget_min * 60), epoch_share))
            scale = self.cfg.lr_floor + (1 - self.cfg.lr_floor) * 0.5 * (1 + np.cos(np.pi * progress))
            for group in self.opt.param_groups:
                group["lr"] = self.r["lr"] * scale

    def _run_stage(self, stage: int, epochs: int, budget_s: float, loss_fn, bar: Progress):
        if self.stage > stage:
            return
        self.stage = stage
        self.net.train()
        clock = self._clock()
        while self.epoch < epochs and clock < budget_s:
            self.aw.start_epoch()
            losses = []
            for step in range(self.cfg.steps_per_epoch):
                self._set_lr(clock, (self.epoch + step / self.cfg.steps_per_epoch) / epochs)
                t0 = time.perf_counter()
                x, target = self._batch()
                out = self.net(x)
                loss = _dice_bce(out, target) if loss_fn is None else loss_fn(out, target)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.aw.step()
                losses.append(loss.item())
                self.elapsed += time.perf_counter() - t0
                if self.rank == 0:
                    bar.update(f"[{self.cfg.method}] stage {stage} epoch {self.epoch + 1}/{epochs} "
                               f"step {step + 1}/{self.cfg.steps_per_epoch} loss {np.mean(losses):.4f} "
                               f"{self.elapsed / 60:5.1f}/{budget_s / 60:.1f} min")
                clock = self._clock()
                if clock >= budget_s:
                    break
            self.epoch += 1
            self.history.append({"stage": stage, "epoch": self.epoch, "loss": float(np.mean(losses)),
                                 "minutes": self.elapsed / 60})
            if self.rank == 0:
                bar.update(f"[{self.cfg.method}] stage {stage} epoch {self.epoch} loss {np.mean(losses):.4f} "
                           f"({self.elapsed / 60:.1f} min)", final=True)
            self._save()
        if stage == 1 and self.cfg.stage2.epochs:
            self.epoch = 0  # stage 2 counts its own epochs

    def fit(self) -> dict:
        cfg = self.cfg
        budget = cfg.time_budget_min * 60
        bar = Progress(self.log)
        two_stage = cfg.method == "skip_ae" and cfg.stage2.epochs > 0
        stage1_budget = budget * (1 - cfg.stage2.time_share) if two_stage else budget
        self._run_stage(1, cfg.epochs, stage1_budget, self.loss_fn, bar)
        if two_stage:
            lpips = None if cfg.stage2.alpha >= 1 else LPIPS(cfg.stage2.lpips_weights).to(self.device)
            loss2 = self.aw if lpips is None else Stage2Loss(self.aw, lpips, cfg.stage2.alpha)
            self._run_stage(2, cfg.stage2.epochs, budget, loss2, bar)
        self.model.eval()
        return {"method": cfg.method, "epochs": self.history[-1]["epoch"] if self.history else 0,
                "minutes": self.elapsed / 60, "final_loss": self.history[-1]["loss"] if self.history else None,
                "weights_bytes": weight_bytes(self.model), "train_images": len(self.train_files),
                "holdout_images": len(self.holdout_files), "world_size": self.world, "device": str(self.device)}

    def plot_loss(self, path: Path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for stage in sorted({h["stage"] for h in self.history}):
            pts = [(h["minutes"], h["loss"]) for h in self.history if h["stage"] == stage]
            ax.plot(*zip(*pts), marker=".", label=f"stage {stage}")
        ax.set_xlabel("training minutes")
        ax.set_ylabel("loss (epoch mean)")
        ax.set_title(f"{self.cfg.method}: training loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def write_summary(self, summary: dict):
        if self.rank == 0:
            (self.out / "train.json").write_text(json.dumps({"summary": summary, "history": self.history}, indent=2))
