"""Training speed on this machine: optimiser steps per minute of edge-train's loop, per setting.

    python -m bench.bench_train [--method unet] [--width 16] [--seconds 45]

Each row runs the real Trainer (train/trainer.py) on generated textures for a fixed wall time,
after a warm-up, with one setting changed from the baseline (fp32, contiguous tensors, batches
made inline on the training thread, as edge-train trained before) and finally all together.
Rows run one after another in one process; nothing else should run on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import machine, save
from edge.demo import texture

BASELINE = {"precision": "fp32", "channels_last": False, "loader_thread": False}
ROWS = [("baseline (fp32, contiguous, inline batches)", {}),
        ("bf16 autocast", {"precision": "bf16"}),
        ("channels_last", {"channels_last": True}),
        ("batches on a thread", {"loader_thread": True}),
        ("bf16 + channels_last, inline batches", {"precision": "bf16", "channels_last": True}),
        ("bf16 + channels_last + batches on a thread", {"precision": "bf16", "channels_last": True, "loader_thread": True}),
        ("bf16 + batches on a thread (contiguous)", {"precision": "bf16", "loader_thread": True}),
        ("edge-train's default (TrainConfig's own settings)", None)]


def steps_per_minute(data: Path, out: Path, method: str, width: int | None, seconds: float,
                     setting: dict | None) -> float:
    """Steps a minute with `setting` over BASELINE; None = edge-train's defaults as TrainConfig has them."""
    from train.config import TrainConfig
    from train.trainer import Trainer

    cfg = TrainConfig(data=str(data), method=method, out=str(out), width=width, holdout=0.0, epochs=10_000,
                      steps_per_epoch=10, time_budget_min=seconds / 60,
                      **({} if setting is None else {**BASELINE, **setting}))
    t = Trainer(cfg, data.parent, log=open("/dev/null", "w"))
    t.cfg = dataclasses.replace(cfg, time_budget_min=0.1)
    t.fit()  # warm-up: allocator, oneDNN kernels, the loader thread
    t.cfg, t.elapsed, t.steps, t.epoch, t.history = cfg, 0.0, 0, 0, []
    t0 = time.perf_counter()
    t.fit()
    wall = time.perf_counter() - t0
    return t.steps / (wall / 60)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="unet")
    ap.add_argument("--width", type=int, default=None, help="network width (default: the method's)")
    ap.add_argument("--seconds", type=float, default=45)
    ap.add_argument("--rows", type=int, nargs="+", help="only these rows (0 = baseline, the first)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "good"
        data.mkdir()
        for i in range(24):
            cv2.imwrite(str(data / f"{i:02d}.png"), (texture(i, 320) * 255).astype(np.uint8))
        for k, (name, setting) in enumerate(ROWS):
            if args.rows and k not in args.rows:
                continue
            spm = steps_per_minute(data, Path(tmp) / f"run{k}", args.method, args.width, args.seconds, setting)
            rows.append({"setting": name, "steps_per_minute": round(spm, 1)})
            print(f"{name:45s} {spm:7.1f} steps/min  x{spm / rows[0]['steps_per_minute']:.2f}", flush=True)
    save("train", {"machine": machine(), "method": args.method, "width": args.width, "seconds": args.seconds,
                   "rows": rows})


if __name__ == "__main__":
    main()
