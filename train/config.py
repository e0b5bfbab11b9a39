"""edge-train's YAML, validated with the station's schema (same one-line errors, exit code 2)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from edge.errors import InputError
from edge.schema import field, load, rng

from .methods import DEFAULT, METHODS, create


def _method(v):
    return None if v in METHODS else "one of " + ", ".join(repr(m) for m in METHODS)

@dataclass(frozen=True)
class TrainConfig:
    data: str = field(doc="folder of good images or MVTec-style tree")
    method: str = field(DEFAULT, check=_method, doc="training method, a folder of train/methods/ (perlin_seg "
                                                    "default, measured best: docs/ACCURACY.md; unet, cae001, "
                                                    "renet_d, skip_ae: the four seed papers)")
    options: dict = field(factory=dict, doc="the method's own options: the Options of train/methods/<method>/ (e.g. "
                                            "perlin_seg's anomaly odds, unet's pseudo-defects, skip_ae's stage2)")
    rejects: str | None = field(None, doc="folder of confirmed defective images (the station's rejects), each with "
                                          "an optional <name>_mask.png; without a mask an image is an image-level "
                                          "label. Must not share an image with the test set (perlin_seg)")
    out: str = field("runs/model", doc="output folder: model.onnx, checkpoint.pt, loss.png, train.json")
    size: int | None = field(None, check=rng(32, 4096), doc="frames resized to size x size; null = the method's "
                                                            "default (perlin_seg: native scale, never resized)")
    width: int | None = field(None, check=rng(2, 512), doc="model channel width; null = the model's default")
    patch: int | None = field(None, check=rng(8, 4096), doc="training crop; null = method default")
    tile_overlap: int | None = field(None, check=rng(0, 4095),
                                     doc="pixels by which the station's tiles overlap, for methods that tile native-"
                                         "scale frames; null = the method's (perlin_seg: a quarter of the tile, 64). "
                                         "0 cuts a 512x512 frame from 9 tiles to 4 for a little accuracy "
                                         "(docs/ACCURACY.md, \"Tiles that do not overlap\"); --calibrate-only "
                                         "applies a change to a trained model")
    tile_blend: Literal["mean", "ramp"] | None = field(
        None, doc="how the station combines overlapping tiles' maps, for methods that tile native-scale frames; "
                  "null = the recipe's default, ramp (tiles cross-fade across their overlap); mean = averaged "
                  "(docs/ACCURACY.md, \"Tiles cross-faded where they overlap\"); --calibrate-only applies a "
                  "change to a trained model")
    working_scale: float | Literal["auto"] = field(
        "auto", check=lambda v: None if v == "auto" or 0 < v <= 1 else "auto or a factor > 0 and <= 1",
        doc="the scale the model works at, for methods that take frames at their own scale (perlin_seg): every "
            "image is resized by this factor for training, and the station resizes each frame by it; auto "
            "(default) = where the training images' median short side reaches 3 tiles (768 px at perlin_seg's "
            "256), the factor that makes it 2 tiles (a 896-px part: 0.57, its tiles cover three ribs where they "
            "covered one), else 1; 1 = the images' own scale, where thin lines matter more than the part's "
            "structure (docs/ACCURACY.md, \"The working scale from the parts' size\")")
    coarse_scale: float | Literal["auto"] | None = field(
        None, check=lambda v: None if v == "auto" or 0 < v < 1 else "auto, null or a factor > 0 and < 1",
        doc="two scales, for methods that tile native-scale frames into a probability map (perlin_seg): half "
            "the training crops are cut from the images resized by this factor and train a second network, and "
            "the station runs each frame at both scales in one call and fuses the maps; auto = where the training "
            "images' median short side reaches 3 tiles (768 px at perlin_seg's 256), the factor that makes it 2 "
            "tiles (a 896-px part: 0.57), else one scale; null (default) = one scale. Each network trains on half "
            "the crops: give it twice the steps (docs/ACCURACY.md, \"Two scales in one call\")")
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
    detect: dict = field(factory=dict, doc="overrides of the recipe's detect section")
    device: Literal["auto", "cpu", "cuda"] = field("auto")
    threads: int = field(0, check=rng(0, 256), doc="torch CPU threads; 0 = all cores")
    precision: Literal["auto", "fp32", "bf16"] = field(
        "auto", doc="bf16: autocast matrix work to bfloat16 (weights stay fp32); auto = bf16 where the CPU has "
                    "native bf16 (AVX-512 BF16 / AMX) or on a CUDA GPU with bf16, else fp32")
    channels_last: bool | Literal["auto"] = field(
        "auto", doc="NHWC memory layout for convolutions; auto = on a CPU the faster of NHWC and NCHW, timed on a "
                    "few forward and backward passes before training (which wins depends on the CPU: docs/"
                    "BENCHMARKS.md), NHWC on a GPU")
    loader_thread: bool = field(True, doc="prepare batches (crops, synthetic defects) on a background thread")

    def validate(self, where, prefix):
        m = create(self, where)  # the method's options and its own checks
        if self.rejects is not None and not m.takes_rejects:
            raise InputError(where, "rejects", f"expected null: {self.method} does not learn from rejects "
                                               f"(perlin_seg does)")
        if self.width is not None and not m.width_option:
            raise InputError(where, "width", f"expected null: {self.method}'s network has fixed widths")
        r = m.r
        side = r.size or r.export
        if self.tile_overlap is not None and (r.export is None or self.tile_overlap >= r.export):
            raise InputError(where, "tile_overlap",
                             f"expected null: {self.method} resizes frames, it does not tile them" if r.export is None
                             else f"expected less than the tile ({r.export}), got {self.tile_overlap}")
        if self.tile_blend is not None and r.export is None:
            raise InputError(where, "tile_blend", f"expected null: {self.method} resizes frames, it does not tile them")
        if self.working_scale not in ("auto", 1) and not m.scales_frames():
            why = f"resizes its frames to {r.size}x{r.size}" if r.size else "does not take frames at their own scale"
            raise InputError(where, "working_scale", f"expected auto or 1: {self.method} {why}")
        if self.working_scale not in ("auto", 1) and self.coarse_scale is not None:
            raise InputError(where, "working_scale", "expected auto or 1 with a coarse_scale: two scales keep the "
                                                     "native one")
        if self.coarse_scale not in ("auto", None) and not m.two_scales():
            raise InputError(where, "coarse_scale", f"expected auto or null: {self.method} does not tile native-scale "
                                                    "frames into a probability map with fixed tiles")
        if r.patch is not None and side is not None and r.patch > side:
            raise InputError(where, "patch", f"expected at most {'size' if r.size else 'the export tile'} "
                                             f"({side}), got {r.patch}")


LEGACY = ("pseudo", "stage2", "loss", "input_norm")  # top-level sections before each method owned its options


def migrate(raw: dict, where: str) -> list[str]:
    """Move settings that configs wrote at the top level before each method owned its options
    (`pseudo`, `stage2`, `loss`, `input_norm`) under `options:`, as the method's `legacy` map says,
    so recorded configs train as they did. Settings the method never read are dropped, as they
    were then. Returns one note per setting moved or dropped."""
    cls = METHODS.get(raw.get("method", DEFAULT))
    if cls is None or not isinstance(raw.get("options", {}), dict):
        return []  # the schema names the unknown method or the malformed options
    options, notes = dict(raw.get("options") or {}), []
    for section in LEGACY:
        if section not in raw:
            continue
        value = raw.pop(section)
        items = [(f"{section}.{k}", v) for k, v in value.items()] if section == "loss" and isinstance(value, dict) \
            else [(section, value)]
        for old, v in items:
            new = cls.legacy.get(old)
            if new is None:
                if old == "input_norm" and v:
                    why = "reconstructs the raw input" if cls.reconstructs else "has no such option"
                    raise InputError(where, "input_norm", f"expected false: {cls.name} {why}")
                notes.append(f"{where}: {old} ignored ({cls.name} does not use it)")
                continue
            if new in options:
                raise InputError(where, f"options.{new}", f"expected once: also given as {old}, its older form")
            options[new] = v
            notes.append(f"{where}: {old} read as options.{new}")
    if options:
        raw["options"] = options
    return notes


def config_path(base: Path, path: str) -> Path:
    """A path the config names: as given when absolute, else relative to the config's folder."""
    return Path(path) if Path(path).is_absolute() else base / path


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
    for note in migrate(raw, str(p)):
        print(f"edge-train: {note}", file=sys.stderr)
    cfg = load(TrainConfig, raw, str(p))
    base = p.resolve().parent
    data = config_path(base, cfg.data)
    if not data.exists():
        raise InputError(str(p), "data", f"no such folder: {data}")
    if cfg.rejects is not None:
        from .rejects import check_no_overlap
        rejects = config_path(base, cfg.rejects)
        if not rejects.is_dir():
            raise InputError(str(p), "rejects", f"no such folder: {rejects}")
        check_no_overlap(rejects, data, str(p))
    create(cfg, str(p), base)  # files named in the options, relative to the config
    return cfg, base
