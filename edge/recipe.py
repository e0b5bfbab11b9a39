"""The inspection recipe: preprocessing, detection method and parameters, decision rule.

It travels with the model (ONNX metadata key `edge_recipe`, later the engine's JSON sidecar) so
that training, evaluation and the station can never disagree. A station config may override
single keys of it; docs/CONFIG.md lists every key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Literal, Mapping

from .errors import InputError
from .schema import field, load, merge, rng, to_dict

RECIPE_KEY = "edge_recipe"
# The recipe's shape. Every shipped model carries one and the loader refuses unknown keys, so a
# change of shape bumps SCHEMA and adds a step to MIGRATIONS that turns the old shape into the new
# one: models in the field keep loading. Recipes without `schema` are version 1.
SCHEMA = 6
MIGRATIONS: dict[int, Callable[[dict], dict]] = {
    1: lambda raw: raw,  # 1 -> 2: `schema` itself and decision.non_finite (its default) were added
    2: lambda raw: raw,  # 2 -> 3: preprocess.input_multiple (its default: fixed-input models ignore it)
    # 3 -> 4: preprocess.tile_blend; older models' thresholds were calibrated on averaged tiles
    3: lambda raw: {**raw, "preprocess": {"tile_blend": "mean", **(raw.get("preprocess") or {})}},
    4: lambda raw: raw,  # 4 -> 5: preprocess.coarse_scale, scale_plane, coarse_weight (their defaults: one scale)
    5: lambda raw: raw,  # 5 -> 6: preprocess.working_scale (its default: frames at their own scale)
}


def migrate(raw: dict, where: str) -> dict:
    """A recipe of any earlier schema in today's shape; a later schema is refused by name."""
    version = raw.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(where, f"{RECIPE_KEY}.schema", f"expected a recipe schema version >= 1, got {version!r}")
    if version > SCHEMA:
        raise InputError(where, f"{RECIPE_KEY}.schema", f"expected a recipe of schema {SCHEMA} or older, got {version}: "
                                                        "the model was made by a newer edge-inspect; upgrade the station")
    raw = {k: v for k, v in raw.items() if k != "schema"}
    for v in range(version, SCHEMA):
        raw = MIGRATIONS[v](raw)
    return {**raw, "schema": SCHEMA}


def _odd(v):
    return None if v % 2 == 1 and v >= 1 else "an odd integer >= 1"


@dataclass(frozen=True)
class Preprocess:
    grayscale: bool = field(True, doc="convert colour frames to one channel (BT.601 luma)")
    size: tuple[int, int] | None = field(
        None, check=lambda s: None if min(s) >= 8 else "two sizes >= 8",
        doc="[height, width] to resize every frame to before the model; null keeps the native size")
    working_scale: float = field(
        1.0, check=lambda v: None if 0 < v <= 1 else "a factor > 0 and <= 1",
        doc="every frame resized by this factor (area averaging) before the model, its aspect kept: the scale "
            "the model works at. edge-train chooses it from the parts' size (a large part works at the scale "
            "where its short side spans two tiles: docs/ACCURACY.md, \"The working scale from the parts' "
            "size\"); the map is at this scale, defect regions are reported in the frame's pixels. 1 = the "
            "frame's own scale")
    bit_depth: int = field(8, check=rng(8, 16), doc="bit depth of the frames the model was trained on; frames of "
                                                    "another depth (12-bit cameras, 16-bit PNG/TIFF) are rescaled to "
                                                    "it first: value * (2^bit_depth - 1) / (2^bits - 1)")
    scale: float = field(1 / 255, check=rng(0, lo_open=True), doc="pixel value multiplier, applied after the "
                                                                  "bit-depth rescaling")
    mean: float = field(0.0, doc="subtracted after scaling")
    std: float = field(1.0, check=rng(0, lo_open=True), doc="divided by after subtracting the mean")
    tile_overlap: int = field(0, check=rng(0, 4096),
                              doc="pixels by which model-size tiles overlap when a frame is larger than the model input")
    tile_blend: Literal["mean", "ramp"] = field(
        "ramp", doc="how overlapping tiles' maps are combined: ramp = each tile's weight falls linearly to 0 across "
                    "its overlap with the next, so a pixel counts most from the tile that saw most around it; mean = "
                    "averaged (models made before tile_blend existed)")
    input_multiple: int = field(1, check=rng(1, 1024),
                                doc="a whole-frame model (dynamic height and width: one call per frame) takes sides that "
                                    "are multiples of this; frames are reflect-padded at the bottom and right up to "
                                    "it and the output cropped back. Models with a fixed input ignore it")
    coarse_scale: float | None = field(
        None, check=lambda v: None if 0 < v < 1 else "a factor > 0 and < 1",
        doc="two scales: each frame is also resized by this factor and its tiles go in the same model call; the "
            "coarse map, brought back to the frame's size, and the native one are fused by their maximum (the "
            "coarse view sees a large part's structure, the native one its thin lines; docs/ACCURACY.md, \"Two "
            "scales in one call\"). edge-train chooses it from the parts' size; null = native scale only. "
            "Probability maps only, models with fixed tiles only")
    scale_plane: bool = field(False, doc="two scales: the model takes one more input channel after the image's, 0 on "
                                         "the frame's tiles and 1 on the coarse frame's, which tells it the scale "
                                         "(edge-train's two-scale models hold a network per scale and it picks one)")
    coarse_weight: float = field(1.0, check=rng(0, lo_open=True),
                                 doc="the coarse map's weight against the native one, w (calibrated by edge-train on "
                                     "held-out good images): fused = max(native x min(1, 1/w), coarse x min(1, w)), "
                                     "so the fused map stays a probability")


@dataclass(frozen=True)
class DctFusion:
    """Seed 001, eq. 17-22: patch-DCT regional mask fused with the residual's mu + gamma*sigma."""
    patch: int = field(32, check=lambda v: None if 8 <= v <= 256 and v % 4 == 0 else "a multiple of 4 in 8..256",
                       doc="N, the DCT patch side in pixels (a multiple of 4: the kernel folds it in quarters)")
    stride: int = field(32, check=rng(1, 256), doc="s, the step between patches")
    block: int = field(8, check=rng(2, 64), doc="L, side of the low-frequency block averaged (without F(0,0))")
    epsilon: float = field(0.05, check=rng(0), doc="threshold on |f(src) - f(rec)| that marks a patch (eq. 20)")
    gamma: float = field(3.0, check=rng(0), doc="sensitivity: defect pixels have residual >= mu + gamma*sigma (eq. 21)")

    def validate(self, where, prefix):
        if self.block > self.patch:
            raise InputError(where, f"{prefix}.block", f"expected at most patch ({self.patch}), got {self.block}")


@dataclass(frozen=True)
class SquaredResidual:
    """Seed 002: squared residual (eq. 9), mean filter, adaptive threshold mu + k*sigma of the filtered map."""
    kernel: int = field(5, check=_odd, doc="side of the mean filter")
    k: float = field(3.0, check=rng(0), doc="adaptive threshold = mean + k * std of the filtered map")
    floor: float = field(0.0, check=rng(0), doc="the threshold never goes below this (calibrated on good images)")


@dataclass(frozen=True)
class Probability:
    """Seed 000: the model outputs a defect probability map; threshold it."""
    threshold: float = field(0.5, check=rng(0, 1), doc="probability at or above which a pixel is a defect")
    smooth: int = field(1, check=_odd, doc="side of the mean filter applied to the map before its peak becomes the "
                                          "image score (1 = the raw peak): one bright pixel does not fail a part")
    top_share: float = field(0.0, check=rng(0, 0.5), doc="the image score is the mean of this share of the map's "
                                                         "highest pixels (at least one; 0 = the peak): a good part's "
                                                         "score then does not grow with the frame's pixel count")
    sigma: float = field(0.0, check=rng(0, 32), doc="Gaussian blur (standard deviation in pixels) of the map that the "
                                                    "pixel threshold cuts into regions (0 = the raw map); the image "
                                                    "score reads the raw map: a defect's region is filled in and a "
                                                    "stray pixel's is not, without lowering a thin defect's peak")


@dataclass(frozen=True)
class Detect:
    method: Literal["dct_fusion", "squared_residual", "probability"] = field(
        "dct_fusion", doc="which residual analysis turns the model output into a defect mask")
    dct_fusion: DctFusion = field(factory=DctFusion)
    squared_residual: SquaredResidual = field(factory=SquaredResidual)
    probability: Probability = field(factory=Probability)


@dataclass(frozen=True)
class Decision:
    rule: Literal["regions", "score"] = field(
        "regions", doc="regions: NG when a defect region reaches min_area; score: NG when the image score "
                       "reaches score_threshold (calibrated on good images by edge-train)")
    min_area: int = field(16, check=rng(1), doc="smallest defect region, in frame pixels, that makes (rule regions) "
                                                "or is reported as (both rules) a defect")
    score_threshold: float | None = field(None, doc="image score at or above which a frame is NG (rule score)")
    max_regions: int = field(32, check=rng(0), doc="at most this many regions (largest first) are reported per frame")
    non_finite: Literal["drop", "ng"] = field(
        "drop", doc="a frame whose model output or score is NaN or infinite (a broken engine, an overflow): "
                    "drop = DROPPED with reason non_finite (the PLC sees no verdict), ng = NG; never OK")

    def validate(self, where, prefix):
        if self.rule == "score" and self.score_threshold is None:
            raise InputError(where, f"{prefix}.score_threshold" if prefix else "score_threshold",
                             "expected a number when rule is score, got null")


@dataclass(frozen=True)
class Recipe:
    schema: int = field(SCHEMA, check=lambda v: None if v == SCHEMA else f"{SCHEMA} (older recipes are migrated on load)",
                        doc="the recipe's shape version (edge.recipe.SCHEMA); older ones migrate on load")
    model_family: str = field("unknown", doc="e.g. cae-seed001, renet-d, skip-ae, unet")
    preprocess: Preprocess = field(factory=Preprocess)
    detect: Detect = field(factory=Detect)
    decision: Decision = field(factory=Decision)
    training: dict[str, str] = field(factory=dict, doc="summary of the training data (free text values)")

    def validate(self, where, prefix):
        if self.preprocess.working_scale != 1.0 and self.preprocess.size is not None:
            key = "preprocess.working_scale"
            raise InputError(where, f"{prefix}.{key}" if prefix else key,
                             f"expected 1 with a fixed size ({self.preprocess.size[0]}x{self.preprocess.size[1]}): "
                             "frames are resized to that size")
        if self.preprocess.scale_plane and self.preprocess.coarse_scale is None:
            key = "preprocess.scale_plane"
            raise InputError(where, f"{prefix}.{key}" if prefix else key, "expected false without a coarse_scale")
        if self.preprocess.coarse_scale is not None and self.detect.method != "probability":
            key = "preprocess.coarse_scale"
            raise InputError(where, f"{prefix}.{key}" if prefix else key,
                             f"expected null with detect.method {self.detect.method}: two scales fuse probability maps")


def load_recipe(metadata: Mapping[str, str], model_where: str, overrides: Mapping | None = None,
                config_where: str | None = None) -> Recipe:
    """The one way a recipe is read: defaults <- the model's recipe (metadata key edge_recipe of
    an ONNX model, or of the engine's sidecar) <- a station config's overrides, validated at each
    step so an error names the file it comes from."""
    text = metadata.get(RECIPE_KEY)
    raw = {}
    if text is not None:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(model_where, RECIPE_KEY, f"expected JSON in the model metadata, got a parse error at char {e.pos}") from None
        if not isinstance(raw, dict):
            raise InputError(model_where, RECIPE_KEY, "expected a JSON object in the model metadata")
        raw = migrate(raw, model_where)
        load(Recipe, raw, model_where, RECIPE_KEY)  # alone first, so its errors name the model file
    if not overrides:
        return load(Recipe, raw, model_where, RECIPE_KEY)
    config_where = config_where or "<overrides>"
    load(Recipe, overrides, config_where)
    try:
        return load(Recipe, merge(raw, overrides), config_where)
    except InputError as e:  # a cross-field check that only the combination breaks
        raise InputError(config_where, e.key, e.message + f" (after merging the recipe of {model_where})") from None


def model_metadata(path) -> dict[str, str]:
    """An ONNX model's metadata (through ONNX Runtime, which every install has) or an engine's
    (its sidecar), without running anything."""
    from pathlib import Path
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from .backends.onnxruntime import OnnxRuntimeRunner
        return dict(OnnxRuntimeRunner(path).metadata)
    from .backends.sidecar import read_sidecar
    return {RECIPE_KEY: recipe_json(read_sidecar(path).recipe)}


def read_recipe(path) -> Recipe:
    """The recipe a model file carries (defaults where it carries none)."""
    return load_recipe(model_metadata(path), str(path))


def has_recipe(metadata: Mapping[str, str]) -> bool:
    return RECIPE_KEY in metadata


def recipe_json(recipe: Recipe) -> str:
    return json.dumps(to_dict(recipe), sort_keys=True)
