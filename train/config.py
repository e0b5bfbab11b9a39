"""edge-train's YAML, validated with the station's schema (same one-line errors, exit code 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from edge.errors import InputError
from edge.schema import field, load, rng

from .methods import DEFAULT, METHODS, get


def _method(v):
    return None if v in METHODS else "one of " + ", ".join(repr(m) for m in METHODS)

@dataclass(frozen=True)
class Stage2:
    epochs: int = field(0, check=rng(0, 10_000), doc="seed 003 stage 2 epochs on ADGA defects (skip_ae); 0 = none")
    alpha: float = field(0.8, check=rng(0, 1), doc="eq. 10: alpha * AW-SSIM + (1 - alpha) * LPIPS")
    lpips_weights: str | None = field(None, doc="AlexNet+LPIPS state_dict file; needed when alpha < 1")
    time_share: float = field(0.3, check=rng(0, 0.9), doc="share of time_budget_min kept for stage 2")


@dataclass(frozen=True)
class Pseudo:
    """Seed 000's pseudo-defects for the unet. The paper sets the attenuation "according to the
    actual situation"; the defaults are what measured best on real defects (faint, mostly dark,
    soft-edged; docs/ACCURACY.md). The generator at full strength, as first built: strength
    [0.7, 1], colours [1, 1, 1], feather 0."""
    share: float = field(0.7, check=rng(0, 1), doc="share of training patches that get a pseudo-defect")
    strength: tuple[float, float] = field((0.15, 0.8), doc="range of the base colour's weight at the defect's "
                                                           "centre (0.3 = a faint stain, 1 = the pure colour)")
    size: tuple[float, float] = field((0.04, 0.18), doc="defect size range, a share of the patch side")
    colours: tuple[float, float, float] = field((1.0, 1.0, 3.0), doc="odds of white, grey and black defects")
    noise: float = field(0.04, check=rng(0, 1), doc="std of the noise added to the base colour")
    feather: float = field(1.5, check=rng(0, 20), doc="Gaussian sigma (pixels) that softens the defect's edge")
    shapes: tuple[float, float, float, float, float, float] = field(
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.0), doc="odds of rectangle, line, triangle, polygon, bezier blob (seed 000) "
                                            "and band (a strip across the patch: a brightness step)")
    margin: float = field(0.15, check=rng(0, 0.5), doc="defect centres stay this share of the side from the "
                                                       "border; 0 lets defects run off the edge")

    def validate(self, where, prefix):
        for key, pair in (("strength", self.strength), ("size", self.size)):
            if not (0 < pair[0] <= pair[1] <= 1):
                raise InputError(where, f"{prefix}.{key}", f"expected 0 < low <= high <= 1, got {list(pair)}")
        for key, odds in (("colours", self.colours), ("shapes", self.shapes)):
            if min(odds) < 0 or sum(odds) <= 0:
                raise InputError(where, f"{prefix}.{key}", f"expected {len(odds)} odds >= 0, not all 0, got {list(odds)}")

    def kwargs(self) -> dict:
        """pseudo_defect's keyword arguments."""
        return {"strength": self.strength, "size_range": self.size, "noise": self.noise, "feather": self.feather,
                "margin": self.margin, "shape_weights": self.shapes, "colour_weights": self.colours}


@dataclass(frozen=True)
class LossCfg:
    alpha: float = field(0.15, check=rng(0, 1), doc="renet: alpha * L1 + (1 - alpha)(1 - SSIM)")
    aw_weights: tuple[float, float, float] = field((1 / 3, 1 / 3, 1 / 3), doc="aw_ssim: luminance, contrast, structure")
    sigma0: float = field(0.5, check=rng(0.1, 10), doc="aw_ssim: initial Gaussian sigma")
    sigma_k: float = field(0.005, check=rng(0, 1), doc="aw_ssim: sigma increment per step (reset per epoch)")
    variance_patch: int = field(11, check=rng(3, 63), doc="weighted_ssim: side of the variance patch (eq. 7)")


@dataclass(frozen=True)
class TrainConfig:
    data: str = field(doc="folder of good images or MVTec-style tree")
    method: str = field(DEFAULT, check=_method, doc="training method, a folder of train/methods/ (perlin_seg "
                                                    "default, measured best: docs/ACCURACY.md; unet, cae001, "
                                                    "renet_d, skip_ae: the four seed papers)")
    options: dict = field(factory=dict, doc="the method's own options (train/methods/<method>/, e.g. "
                                            "perlin_seg's anomaly odds)")
    rejects: str | None = field(None, doc="folder of confirmed defective images (the station's rejects), each with "
                                          "an optional <name>_mask.png; without a mask an image is an image-level "
                                          "label. Must not share an image with the test set (perlin_seg)")
    out: str = field("runs/model", doc="output folder: model.onnx, checkpoint.pt, loss.png, train.json")
    size: int | None = field(None, check=rng(32, 4096), doc="frames resized to size x size; null = the method's "
                                                            "default (perlin_seg: native scale, never resized)")
    width: int | None = field(None, check=rng(2, 512), doc="model channel width; null = the model's default")
    patch: int | None = field(None, check=rng(8, 4096), doc="training crop; null = method default")
    batch: int | None = field(None, check=rng(1, 4096))
    epochs: int = field(100_000, check=rng(1, 1_000_000), doc="at most this many epochs; by default the time budget ends training")
    steps_per_epoch: int = field(50, check=rng(1, 1_000_000), doc="batches per epoch (patches are drawn at random)")
    time_budget_min: float = field(15.0, check=rng(0.05, 100_000), doc="training stops after this, epochs or not")
    snapshots_min: list[float] = field(factory=list, doc="also export the model as it was at these training minutes "
                                                         "(model-<m>min.onnx, calibrated): an accuracy curve from one run")
    lr: float | None = field(None, check=rng(0, 1, lo_open=True))
    ema: float | None = field(None, check=rng(0, 0.9999),
                              doc="decay of an exponential moving average of the weights (and BatchNorm statistics), "
                                  "exported instead of the last step's weights; 0 = off; null = the method's default")
    lr_schedule: Literal["constant", "cosine"] = field(
        "constant", doc="cosine: decay over the time budget (or the epochs, whichever ends first) to lr_floor x lr")
    lr_floor: float = field(0.05, check=rng(0, 1), doc="cosine: the last learning rate as a share of lr")
    seed: int = field(0)
    holdout: float = field(0.1, check=rng(0, 0.5), doc="share of good images kept out for threshold calibration")
    target_far: float = field(0.05, check=rng(0, 1, lo_open=True), doc="false-alarm rate the image threshold is set for")
    target_pixel_far: float = field(0.01, check=rng(0, 1, lo_open=True),
                                    doc="probability maps: share of a good part's pixels the pixel threshold marks "
                                        "(capped at the image threshold, so an NG part always shows where)")
    loss: LossCfg = field(factory=LossCfg)
    stage2: Stage2 = field(factory=Stage2)
    pseudo: Pseudo = field(factory=Pseudo, doc="unet: seed 000's pseudo-defect generator")
    detect: dict = field(factory=dict, doc="overrides of the recipe's detect section")
    device: Literal["auto", "cpu", "cuda"] = field("auto")
    threads: int = field(0, check=rng(0, 256), doc="torch CPU threads; 0 = all cores")
    precision: Literal["auto", "fp32", "bf16"] = field(
        "auto", doc="bf16: autocast matrix work to bfloat16 (weights stay fp32); auto = bf16 where the CPU has "
                    "native bf16 (AVX-512 BF16 / AMX) or on a CUDA GPU with bf16, else fp32")
    channels_last: bool = field(True, doc="NHWC memory layout for convolutions (faster on CPUs and tensor cores)")
    loader_thread: bool = field(True, doc="prepare batches (crops, synthetic defects) on a background thread")
    input_norm: bool = field(False, doc="unet: standardise each input tile inside the network (zero mean, unit "
                                        "std), so exposure differences do not shift the input")

    def validate(self, where, prefix):
        m = get(self.method)
        r = self.resolved()
        m.validate(self, where)
        if self.input_norm and m.reconstructs:
            raise InputError(where, "input_norm", "expected false: a reconstruction model must reproduce the "
                                                  f"raw input ({self.method} reconstructs)")
        if self.rejects is not None and not m.takes_rejects:
            raise InputError(where, "rejects", f"expected null: {self.method} does not learn from rejects "
                                               f"(perlin_seg does)")
        if self.width is not None and not m.width_option:
            raise InputError(where, "width", f"expected null: {self.method}'s network has fixed widths")
        side = r["size"] or r["export"]
        if r["patch"] is not None and side is not None and r["patch"] > side:
            raise InputError(where, "patch", f"expected at most {'size' if r['size'] else 'the export tile'} "
                                             f"({side}), got {r['patch']}")
        m.options(self, where)

    def resolved(self) -> dict:
        """The method's defaults under this config's explicit settings."""
        m = get(self.method)
        return {"size": self.size or m.size, "patch": self.patch or m.patch, "batch": self.batch or m.batch,
                "lr": self.lr or m.lr, "ema": m.ema if self.ema is None else self.ema, "detect": m.detect, "export": None if self.size else m.export,
                "tile_overlap": 0 if self.size else m.tile_overlap}


def load_config(path: str | Path, overrides: dict | None = None) -> tuple[TrainConfig, Path]:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise InputError(str(p), None, "config file not found") from None
    except yaml.YAMLError as e:
        raise InputError(str(p), None, f"not valid YAML ({getattr(e, 'problem', 'parse error')})") from None
    if not isinstance(raw, dict):
        raise InputError(str(p), None, "expected a mapping at the top level")
    raw.update(overrides or {})
    cfg = load(TrainConfig, raw, str(p))
    base = p.resolve().parent
    data = Path(cfg.data) if Path(cfg.data).is_absolute() else base / cfg.data
    if not data.exists():
        raise InputError(str(p), "data", f"no such folder: {data}")
    if cfg.rejects is not None:
        from .rejects import check_no_overlap
        rejects = Path(cfg.rejects) if Path(cfg.rejects).is_absolute() else base / cfg.rejects
        if not rejects.is_dir():
            raise InputError(str(p), "rejects", f"no such folder: {rejects}")
        check_no_overlap(rejects, data, str(p))
    if cfg.stage2.lpips_weights and not (base / cfg.stage2.lpips_weights).is_file():
        raise InputError(str(p), "stage2.lpips_weights", f"file not found: {base / cfg.stage2.lpips_weights}")
    return cfg, base
