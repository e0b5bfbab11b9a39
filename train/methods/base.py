"""What a training method is: one folder under train/methods/ whose __init__.py defines a Method
subclass decorated with @register, and one line in methods/__init__.py that imports it. A method owns its network, its
options (the config's `options:` section, loaded into its own frozen `Options` dataclass), its
batches (the synthetic data it learns from), its loss, its training stages and the shape it is
exported with.

`Method.create(cfg)` makes one per run: it holds the run's resolved settings (`r`), its options
and whatever state it keeps between steps. Of the run it sees only what it is handed: a
train.data.BatchSource (images, rejects, the run's generator) for each batch, and the model at
the start of each epoch. The trainer, the config and the export only ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import torch

from edge.errors import InputError
from edge.schema import load

if TYPE_CHECKING:  # annotations only: the config imports the methods
    from ..config import TrainConfig
    from ..data import BatchSource


@dataclass
class Stage:
    number: int
    epochs: int
    until_s: float                     # the stage ends when the training clock reaches this
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that takes none."""


@dataclass(frozen=True)
class Resolved:
    """A config's settings with the method's defaults filled in."""
    size: int | None                   # frames resized to size x size; None = native scale
    patch: int | None                  # training crop side; None = the whole (resized) frame
    batch: int
    lr: float
    ema: float                         # decay of the exported weights' moving average (0 = the last step's)
    detect: str                        # the recipe's detect method: how the station reads the output
    export: int | None                 # ONNX input side when the station tiles native-scale frames
    tile_overlap: int                  # pixels by which the station's tiles overlap (native scale)

    @property
    def image_side(self) -> int:
        """The side training images are padded to at least, as the station pads small frames."""
        return max(self.export or 0, self.patch or 0)


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method known to edge-train by its name."""
    METHODS[cls.name] = cls
    return cls


class Method:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""        # one line: paper and idea (docs, --help)
    network_class: ClassVar[type] = torch.nn.Module  # methods.build() makes one with explicit arguments
    Options: ClassVar[type] = NoOptions  # the config's `options:` section
    # settings that configs wrote at the top level before each method owned its options:
    # "section" or "section.key" -> the options key that took it over (train.config.migrate)
    legacy: ClassVar[dict[str, str]] = {}
    # defaults a config may override
    size: ClassVar[int | None] = 256   # frames resized to size x size; None = native scale, tiled
    patch: ClassVar[int | None] = None
    batch: ClassVar[int] = 16
    lr: ClassVar[float] = 1e-3
    ema: ClassVar[float] = 0.0
    detect: ClassVar[str] = "squared_residual"
    export: ClassVar[int | None] = None  # the station's tile side (native scale); a config's patch overrides it
    tile_overlap: ClassVar[int] = 0     # at the default tile; scaled with it
    # what the method is
    reconstructs: ClassVar[bool] = True   # output is an image (residual analysis), not a defect map
    width_option: ClassVar[bool] = True   # the network takes a channel `width`
    takes_rejects: ClassVar[bool] = False  # learns from real defective images (train.yaml `rejects:`)

    def __init__(self, cfg: TrainConfig, options: Any, base: Path | None = None):
        """Use create(): it loads and checks the options first."""
        self.cfg, self.options, self.base = cfg, options, base
        self.coarse_scale: float | None = None  # the run's, from its images (resolve_scales)
        self.working_scale = 1.0                 # likewise
        # a method that tiles native-scale frames is exported at its training crop: a config's
        # `patch` sets the station's tile too, overlapping by the same share of it unless the
        # config's `tile_overlap` says by how much
        export = None if cfg.size or self.export is None else cfg.patch or self.export
        overlap = 0 if export is None or self.export is None else self.tile_overlap * export // self.export
        if export is not None and cfg.tile_overlap is not None:
            overlap = cfg.tile_overlap
        self.r = Resolved(size=cfg.size or self.size, patch=cfg.patch or self.patch, batch=cfg.batch or self.batch,
                          lr=cfg.lr or self.lr, ema=self.ema if cfg.ema is None else cfg.ema, detect=self.detect,
                          export=export, tile_overlap=overlap)

    @classmethod
    def create(cls, cfg: TrainConfig, where: str = "config", base: Path | None = None) -> Method:
        """The method for one run of cfg; base (the config's folder) is where relative files in the
        options are found, and they are checked when it is given."""
        method = cls(cfg, cls.load_options(cfg.options, where), base)
        method.validate(where)
        return method

    @classmethod
    def load_options(cls, raw: dict, where: str) -> Any:
        if cls.Options is NoOptions and raw:
            raise InputError(where, "options", f"expected no options: method {cls.name} takes none "
                                               f"(got {', '.join(sorted(raw))})")
        return load(cls.Options, raw, where, "options")

    def validate(self, where: str):
        """Method-specific checks of the config and options; raise InputError naming the key."""

    def path(self, name: str) -> Path:
        """A file named in the options, relative to the config's folder."""
        p = Path(name)
        return p if p.is_absolute() or self.base is None else self.base / p

    # -- the network --------------------------------------------------------------------------
    def network(self) -> torch.nn.Module:
        raise NotImplementedError

    def whole_frame(self) -> int | None:
        """The side multiple a fully convolutional network takes when it is exported with a dynamic
        height and width, so the station runs each frame in one call; None: exported at the fixed
        export_side and the station tiles frames."""
        return None

    def scales_frames(self) -> bool:
        """Whether this run can have a working scale other than 1 (the config's working_scale): the
        method takes frames at their own scale (no fixed `size`), in tiles of its export side."""
        return self.r.size is None and self.r.export is not None

    def two_scales(self) -> bool:
        """Whether this run can have two scales (the config's coarse_scale): the station runs a
        frame's tiles at both in one call and fuses their maps, so the method tiles native-scale
        frames into a probability map, and its network() takes the scale plane (a network per
        scale, unet.model.ScaleRouted) once resolve_scales() set a coarse scale."""
        return False

    def resolve_scales(self, shapes: list[tuple[int, int]]):
        """The run's working scale and coarse scale for training images of `shapes` (train.data's
        choose_working_scale and choose_coarse_scale of the config's; 1 and None where the method
        cannot have them; a coarse scale keeps the working scale at 1). Called before network():
        with two scales the network takes the scale plane as a second input channel."""
        from ..data import choose_coarse_scale, choose_working_scale
        if self.two_scales():
            assert self.r.export is not None
            self.coarse_scale = choose_coarse_scale(self.cfg.coarse_scale, shapes, self.r.export)
        if self.scales_frames() and self.cfg.coarse_scale is None:
            assert self.r.export is not None
            self.working_scale = choose_working_scale(self.cfg.working_scale, shapes, self.r.export)

    def input_channels(self) -> int:
        """The network's input channels: the grey image, and the scale plane with two scales."""
        return 2 if self.coarse_scale is not None else 1

    def exported(self, model: torch.nn.Module) -> torch.nn.Module:
        """The network as it goes into the ONNX graph (by default the trained one itself)."""
        return model

    def export_side(self) -> int:
        """Side of the square ONNX input: the frame (or the station's tile at native scale)."""
        side = self.r.export or self.r.size
        assert side is not None, "a method at native scale sets `export`"
        return side

    # -- data and loss ------------------------------------------------------------------------
    def make_batch(self, source: BatchSource, n: int, stage: int) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) float32 (n, H, W) arrays for training stage `stage`; by default a
        reconstruction method's clean crops, reproduced. Runs on the batch thread."""
        clean = source.crops(n)
        return clean, clean

    def loss(self) -> Callable:
        raise NotImplementedError

    def stages(self, budget_s: float, device: torch.device) -> list[Stage]:
        return [Stage(1, self.cfg.epochs, budget_s, self.loss())]

    def on_epoch(self, epoch: int, source: BatchSource, model: torch.nn.Module, device: torch.device):
        """Called on the training thread at the start of each epoch (epochs counted per stage)."""

    def on_step(self):
        """Called after each optimiser step."""

    # -- the recipe ---------------------------------------------------------------------------
    def recipe_training(self) -> dict[str, str]:
        """Extra free-text entries for the recipe's training section."""
        return {}

    def recipe_detect(self) -> dict:
        """The method's detect parameters, under the recipe's detect section (before cfg.detect)."""
        return {}

