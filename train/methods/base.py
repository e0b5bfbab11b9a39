"""What a training method is: one folder under train/methods/ whose __init__.py defines METHOD, an
instance of a Method subclass. It owns its network, defaults, batches (the synthetic data it
learns from), loss, training stages and the shape it is exported with; the trainer, the config
and the export only ask it. A new method is a new folder and one line in methods/__init__.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from edge.errors import InputError

if TYPE_CHECKING:  # the trainer passes itself to batch(); no import cycle at run time
    from ..config import TrainConfig
    from ..trainer import Trainer


@dataclass
class Stage:
    number: int
    epochs: int
    until_s: float                     # the stage ends when the training clock reaches this
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Method:
    name: str = ""
    summary: str = ""                  # one line: paper and idea (docs, --help)
    network_class: type = torch.nn.Module  # the network; methods.build() makes one with explicit arguments
    size: int | None = 256             # frames resized to size x size; None = native scale, tiled
    patch: int | None = None           # training crop side; None = the whole (resized) frame
    batch: int = 16
    lr: float = 1e-3
    ema: float = 0.0                   # decay of the exported weights' moving average (0 = the last step's)
    detect: str = "squared_residual"   # recipe detect method: how the station reads the output
    export: int | None = None          # ONNX input side when the station tiles native-scale frames
    tile_overlap: int = 0              # pixels by which the station's tiles overlap (native scale)
    reconstructs: bool = True          # output is an image (residual analysis), not a defect map
    width_option: bool = True          # the network takes a channel `width`
    takes_rejects: bool = False        # learns from real defective images (train.yaml `rejects:`)

    # -- the network --------------------------------------------------------------------------
    def network(self, cfg: "TrainConfig") -> torch.nn.Module:
        raise NotImplementedError

    def whole_frame(self, cfg: "TrainConfig") -> int | None:
        """The side multiple a fully convolutional network takes when it is exported with a dynamic
        height and width, so the station runs each frame in one call; None: exported at the fixed
        export_side and the station tiles frames."""
        return None

    def export_side(self, r: dict) -> int:
        """Side of the square ONNX input: the frame (or the station's tile at native scale)."""
        return r["export"] if r["export"] else r["size"]

    # -- data and loss ------------------------------------------------------------------------
    def make_batch(self, t: "Trainer", n: int) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) float32 (n, H, W) arrays for the trainer's current stage; by default a
        reconstruction method's clean crops, reproduced."""
        clean = t.crops(n)
        return clean, clean

    def loss(self, cfg: "TrainConfig") -> Callable:
        raise NotImplementedError

    def stages(self, t: "Trainer", budget_s: float) -> list[Stage]:
        return [Stage(1, t.cfg.epochs, budget_s, self.loss(t.cfg))]

    def on_epoch(self, t: "Trainer"):
        """Called at the start of each epoch (seed 003's AW-SSIM resets its sigma here)."""

    def on_step(self, t: "Trainer"):
        """Called after each optimiser step."""

    # -- config and recipe --------------------------------------------------------------------
    def options(self, cfg: "TrainConfig", where: str = "config"):
        """The config's `options:` section loaded into the method's own dataclass (None here: a
        method without options refuses any)."""
        if cfg.options:
            raise InputError(where, "options", f"expected no options: method {self.name} takes none "
                                               f"(got {', '.join(sorted(cfg.options))})")
        return None

    def validate(self, cfg: "TrainConfig", where: str):
        """Method-specific checks of the config; raise InputError naming the key."""

    def recipe_training(self, cfg: "TrainConfig") -> dict[str, str]:
        """Extra free-text entries for the recipe's training section."""
        return {}

    def recipe_detect(self, cfg: "TrainConfig") -> dict:
        """The method's detect parameters, under the recipe's detect section (before cfg.detect)."""
        return {}
