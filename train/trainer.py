"""edge-train's training loop, the same for every method (train/methods/): batches drawn at random
from the good images held in memory, with random flips, turned into (input, target) by the method
(its synthetic defects); Adam, a fixed seed, a wall-clock budget, a checkpoint per epoch (resumed
automatically), optional weight snapshots at set minutes, a loss curve. Under torchrun each rank
draws its own batches and DDP averages the gradients; rank 0 writes.

Speed on a CPU (docs/BENCHMARKS.md, "Training steps per minute"): bf16 autocast where the CPU has
native bf16, the faster memory layout of the convolutions (timed before training), and batches
prepared on a background thread while the optimiser steps.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from edge.images import good_images, split_holdout
from edge.preprocess import scaled_frame

from .config import TrainConfig, config_path
from .data import BatchSource, load_gray, pad_to
from .methods import create, weight_bytes


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


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix work is native here (AVX-512 BF16 / AMX on a CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16(device))


def _timer(model: torch.nn.Module, layout, x: torch.Tensor, bf16: bool):
    """A function that times one forward and backward pass of a copy of `model` in `layout`,
    its first pass (which builds the kernels) already made."""
    m = copy.deepcopy(model).to(memory_format=layout).train()
    x = x.contiguous(memory_format=layout)

    def once() -> float:
        t0 = time.perf_counter()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = m(x)
        out.float().mean().backward()
        m.zero_grad(set_to_none=True)
        return time.perf_counter() - t0
    once()
    return once


LAYOUT_ROUNDS = 3


def choose_layout(setting, model: torch.nn.Module, shape: tuple[int, ...], device: torch.device, bf16: bool,
                  distributed: bool, log) -> torch.memory_format:
    """The convolutions' memory layout. `auto` on a single CPU process times both layouts on the
    network itself (with bf16 autocast NHWC doubled the steps on an AMD EPYC and cost 15 % of them
    on an Intel Xeon with AMX: docs/BENCHMARKS.md), the fastest of a few passes each, the layouts
    taking turns so that other work on the machine for a few seconds slows both, not one of them
    (timed one after the other, a busy moment once picked the slower layout: docs/BENCHMARKS.md); on
    a GPU, and under DDP where every rank must agree, NHWC untimed."""
    if setting != "auto":
        return torch.channels_last if setting else torch.contiguous_format
    if device.type != "cpu" or distributed:
        return torch.channels_last
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    timers = {layout: _timer(model, layout, x, bf16) for layout in (torch.channels_last, torch.contiguous_format)}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(LAYOUT_ROUNDS):
        for layout, once in timers.items():
            best[layout] = min(best[layout], once())
    nhwc, nchw = best[torch.channels_last], best[torch.contiguous_format]
    print(f"edge-train: memory layout {'NHWC' if nhwc < nchw else 'NCHW'} (forward + backward of a batch: "
          f"NHWC {nhwc * 1e3:.0f} ms, NCHW {nchw * 1e3:.0f} ms)", file=log)
    return torch.channels_last if nhwc < nchw else torch.contiguous_format


class BatchFeeder:
    """Batches of one stage, made on a background thread (or inline) a few steps ahead, from the
    trainer's own generator: the same seed gives the same batches in the same order. (The
    checkpoint's resume seed is drawn from it too, at a point that depends on the thread's lead.)"""

    AHEAD = 3

    def __init__(self, make, threaded: bool):
        self.make, self.threaded = make, threaded
        self.q: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        self.stop = threading.Event()
        self.thread = None
        if threaded:
            self.thread = threading.Thread(target=self._run, name="edge-train-batches", daemon=True)
            self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                item = self.make()
            except BaseException as e:  # handed to the training thread, which raises it
                item = e
            while not self.stop.is_set():
                try:
                    self.q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def get(self):
        if not self.threaded:
            return self.make()
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


NORM_BATCHES = 32  # training batches the averaged weights' BatchNorm statistics are measured on


class Trainer:
    def __init__(self, cfg: TrainConfig, base: Path, log=None):
        self.cfg, self.log = cfg, log or sys.stderr
        self.method = create(cfg, base=base)  # this run's method: its options, settings and state
        self.r = self.method.r
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.device = _device(cfg)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed + self.rank)
        data = config_path(base, cfg.data)
        self.data_root = data
        self.out = config_path(base, cfg.out)
        files = good_images(data)
        self.train_files, self.holdout_files = split_holdout(files, cfg.holdout)
        images = self._load(self.train_files)  # first: the images' sizes choose the working scale
        rejects = []
        self.reject_files: list[Path] = []  # read again after export (train.evaluate.rejects_caught)
        if cfg.rejects is not None:
            from .rejects import load_rejects
            folder = config_path(base, cfg.rejects)
            rejects = load_rejects(folder, self.r.image_side, self.method.working_scale)
            self.reject_files = [folder / r.name for r in rejects]
        # all a method sees of the run when it makes a batch
        self.source = BatchSource(images, np.random.default_rng(cfg.seed + self.rank),
                                  self.r.patch, rejects,
                                  len(self.train_files) if self.method.coarse_scale is not None else None)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = self.method.network().to(self.device)
        self.bf16 = use_bf16(cfg, self.device)
        side = self.r.patch or self.r.size or 256  # the crop trained on; 256 stands in for whole native frames
        shape = (self.r.batch, self.method.input_channels(), side, side)
        self.layout = choose_layout(cfg.channels_last, self.model, shape, self.device, self.bf16, self.world > 1, self.log)
        self.model = self.model.to(memory_format=self.layout)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.r.lr)
        # a moving average of the weights: with a constant learning rate and ~2,000 steps the last
        # step's weights are one noisy point; the average is what gets exported
        self.ema = None
        if self.r.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.r.ema), use_buffers=True)
        self.history: list[dict] = []
        self.snapshots: dict[str, str] = {}
        self.stage, self.epoch, self.elapsed, self.steps = 1, 0, 0.0, 0
        self._resume()

    # -- images and crops ---------------------------------------------------------------------
    def _load(self, files: list[Path]):
        """Resized to size x size and stacked, or at native scale (a list), each padded as the
        station pads a frame smaller than the model's tile, so crops see what the station feeds:
        at the working scale, resized as the station resizes a frame. With two scales the list
        holds each image twice, at native scale and resized by the coarse scale, so half the crops
        come from each."""
        size = self.r.size
        if size is not None:
            return np.stack([load_gray(f, size) for f in files])
        native = [load_gray(f, None) for f in files]
        self.method.resolve_scales([(x.shape[0], x.shape[1]) for x in native])
        scale, working = self.method.coarse_scale, self.method.working_scale
        if working != 1.0:
            why = ": the images' median short side spans 3 tiles or more" if self.cfg.working_scale == "auto" else ""
            print(f"edge-train: working scale x{working:.4g} (working_scale {self.cfg.working_scale}){why}",
                  file=self.log)
            native = [scaled_frame(x, working) for x in native]
        if scale is not None:
            print(f"edge-train: two scales: native and x{scale:.4g} (coarse_scale {self.cfg.coarse_scale}), half "
                  f"the crops from each, one network per scale", file=self.log)
            return [pad_to(x, self.r.image_side) for x in native + [scaled_frame(x, scale) for x in native]]
        return [pad_to(x, self.r.image_side) for x in native]

    def _batch(self):
        x, target = self.method.make_batch(self.source, self.r.batch, self.stage)
        x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return (x[:, None] if x.ndim == 3 else x,  # (n, H, W) grey, or (n, C, H, W) with the scale plane
                torch.from_numpy(np.ascontiguousarray(target, np.float32))[:, None])

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    def _resume(self):
        if not self.checkpoint.is_file():
            return
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)  # no code from a file
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.history, self.stage, self.epoch, self.elapsed = state["history"], state["stage"], state["epoch"], state["elapsed"]
        self.steps, self.snapshots = state.get("steps", 0), state.get("snapshots", {})
        self.source.rng = np.random.default_rng(state["rng_seed"])
        print(f"edge-train: resumed from {self.checkpoint} (stage {self.stage}, epoch {self.epoch}, "
              f"{self.elapsed / 60:.1f} min used)", file=self.log)

    def _save(self, exported: dict | None = None):
        """The run's state for resuming; at the end also the weights export used (`exported`)."""
        if self.rank != 0:
            return
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "history": self.history,
                    "stage": self.stage, "epoch": self.epoch, "elapsed": self.elapsed, "steps": self.steps,
                    "snapshots": self.snapshots, "rng_seed": int(self.source.rng.integers(0, 2 ** 31)),
                    "method": self.cfg.method, **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                    **({"exported": exported} if exported is not None else {})}, tmp)
        tmp.replace(self.checkpoint)

    def _snapshot(self, clock: float, draw):
        """Weights at each of cfg.snapshots_min as the clock passes it (the accuracy curve), as
        they would be exported then."""
        for minutes in self.cfg.snapshots_min:
            key = f"{minutes:g}"
            if clock >= minutes * 60 and key not in self.snapshots and self.rank == 0:
                path = self.out / f"snapshot-{key}min.pt"
                torch.save({"model": self.weights_for_export(draw), "minutes": clock / 60, "steps": self.steps}, path)
                self.snapshots[key] = path.name

    def weights_for_export(self, draw) -> dict:
        """The weights export uses: the last step's, or the moving average with BatchNorm
        statistics measured for it on NORM_BATCHES batches of `draw` (torch's update_bn, as SWA
        does). The running statistics averaged along with the weights belong to no weights that
        ever ran: while the weights still move (a short run, rejects in the batches) the averaged
        model's activations no longer match them and its map flattens (docs/ACCURACY.md: five
        rejects per type, 0.60 -> 0.87 image AUROC, same checkpoints). Measured on a copy, so the
        average's own buffers go on averaging; `draw` gives (input, target) batches, the feeder's
        while it runs (one thread makes them)."""
        if self.ema is None:
            return self.model.state_dict()
        from torch.optim.swa_utils import update_bn
        averaged = copy.deepcopy(self.ema.module)
        update_bn((draw() for _ in range(NORM_BATCHES)), averaged, self.device)
        print(f"edge-train: BatchNorm statistics of the averaged weights measured on {NORM_BATCHES} batches",
              file=self.log)
        return averaged.state_dict()

    @staticmethod
    def exported_from_checkpoint(state: dict) -> dict:
        """The weights export used, from a saved checkpoint.pt: those of a finished run, else the
        moving average where the run kept one (stored as torch's AveragedModel: `module.`-prefixed,
        with a step count; its BatchNorm statistics averaged, not measured), else the last step's."""
        if "exported" in state:
            return state["exported"]
        if "ema" not in state:
            return state["model"]
        return {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}

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
                group["lr"] = self.r.lr * scale

    def _step(self, x: torch.Tensor, target: torch.Tensor, loss_fn) -> float:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.layout)
        target = target.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x)
        loss = loss_fn(out.float(), target)  # the loss in fp32: small differences matter there
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item()

    def _run_stage(self, stage, bar: Progress, last: bool):
        if self.stage > stage.number:
            return
        self.stage = stage.number
        self.net.train()
        clock = self._clock()
        spe = self.cfg.steps_per_epoch
        feeder = BatchFeeder(self._batch, self.cfg.loader_thread)
        try:
            while self.epoch < stage.epochs and clock < stage.until_s:
                self.method.on_epoch(self.epoch, self.source, self.model, self.device)
                losses = []
                for step in range(spe):
                    self._set_lr(clock, (self.epoch + step / spe) / stage.epochs)
                    t0 = time.perf_counter()
                    losses.append(self._step(*feeder.get(), stage.loss))
                    self.method.on_step()
                    self.steps += 1
                    self.elapsed += time.perf_counter() - t0
                    if self.rank == 0:
                        bar.update(f"[{self.cfg.method}] stage {stage.number} epoch {self.epoch + 1}/{stage.epochs} "
                                   f"step {step + 1}/{spe} loss {np.mean(losses):.4f} "
                                   f"{self.elapsed / 60:5.1f}/{stage.until_s / 60:.1f} min")
                    clock = self._clock()
                    self._snapshot(clock, feeder.get)
                    if clock >= stage.until_s:
                        break
                self.epoch += 1
                self.history.append({"stage": stage.number, "epoch": self.epoch, "loss": float(np.mean(losses)),
                                     "minutes": self.elapsed / 60, "steps": self.steps})
                if self.rank == 0:
                    bar.update(f"[{self.cfg.method}] stage {stage.number} epoch {self.epoch} "
                               f"loss {np.mean(losses):.4f} ({self.elapsed / 60:.1f} min)", final=True)
                self._save()
        finally:
            feeder.close()
        if not last:
            self.epoch = 0  # the next stage counts its own epochs

    def fit(self) -> dict:
        cfg = self.cfg
        bar = Progress(self.log)
        stages = self.method.stages(cfg.time_budget_min * 60, self.device)
        for i, stage in enumerate(stages):
            self._run_stage(stage, bar, last=i + 1 == len(stages))
        if self.ema is not None and self.steps:
            exported = self.weights_for_export(self._batch)
            self._save(exported)  # post-hoc scripts load what the ONNX holds (exported_from_checkpoint)
            self.model.load_state_dict(exported)
        self.model.eval()
        return {"method": cfg.method, "epochs": self.history[-1]["epoch"] if self.history else 0,
                "steps": self.steps, "minutes": self.elapsed / 60, "coarse_scale": self.method.coarse_scale,
                "working_scale": self.method.working_scale,
                "steps_per_minute": round(self.steps / (self.elapsed / 60), 1) if self.elapsed else None,
                "final_loss": self.history[-1]["loss"] if self.history else None,
                "weights_bytes": weight_bytes(self.model), "train_images": len(self.train_files),
                "holdout_images": len(self.holdout_files),
                "rejects": len(self.source.rejects),
                "rejects_masked": sum(r.mask is not None for r in self.source.rejects), "ema": self.r.ema, "world_size": self.world, "device": str(self.device),
                "bf16": self.bf16, "channels_last": self.layout == torch.channels_last, "loader_thread": cfg.loader_thread}

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
