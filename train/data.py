"""Training data: images as the model sees them (grey, float32, the station's preprocessing) and
random crops. Reading files, listing folders and the hold-out policy are edge.images (shared
with calib/ and build_engines/)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.images import read_image_or_fail
from edge.preprocess import Preprocessor
from edge.recipe import Preprocess


def training_preprocess(size: int | None, tile_overlap: int = 0, input_multiple: int = 1,
                        tile_blend: Literal["mean", "ramp"] | None = None,
                        coarse_scale: float | None = None, working_scale: float = 1.0) -> Preprocess:
    """The preprocessing a model is trained with; export writes this same object into the recipe.
    size None: frames keep their native scale and aspect ratio; the station tiles them (their maps
    combined by tile_blend, None: the recipe's default), or runs them whole, padded to
    input_multiple (a whole-frame model); with coarse_scale also resized by it, each tile's scale
    given to the model by a scale plane (two scales: a network per scale); working_scale: every
    frame first resized by it (the scale a large part is worked at)."""
    p = Preprocess(size=(size, size) if size is not None else None, tile_overlap=tile_overlap,
                   input_multiple=input_multiple, coarse_scale=coarse_scale, scale_plane=coarse_scale is not None,
                   working_scale=working_scale)
    return p if tile_blend is None else replace(p, tile_blend=tile_blend)


LARGE_FROM = 3  # a part whose short side spans this many tiles is large: seen smaller (auto scales)
LARGE_TO = 2    # ... at the scale where its short side spans this many tiles


def large_part_scale(shapes: list[tuple[int, int]], tile: int) -> float | None:
    """The factor that shows a large part whole enough: where the images' median short side spans
    LARGE_FROM tiles or more, the factor that makes it LARGE_TO tiles (enough of the part in one
    tile to see its structure; the staged 896-px objects: 0.57, docs/ACCURACY.md "The working
    scale"); None for smaller parts (the magnetic tiles: median 262 px) or no images."""
    if not shapes:
        return None
    short = float(np.median([min(h, w) for h, w in shapes]))
    return round(LARGE_TO * tile / short, 4) if short >= LARGE_FROM * tile else None


def choose_working_scale(setting: float | str, shapes: list[tuple[int, int]], tile: int) -> float:
    """The config's working_scale for images of `shapes` and the station's `tile`: auto = a large
    part's factor (large_part_scale), 1 for smaller ones."""
    if setting != "auto":
        return float(setting)
    return large_part_scale(shapes, tile) or 1.0


def choose_coarse_scale(setting: float | str | None, shapes: list[tuple[int, int]], tile: int) -> float | None:
    """The config's coarse_scale for images of `shapes` and the station's `tile`: auto gives a
    large part (large_part_scale) a coarse view beside the native one; smaller parts stay at one
    scale."""
    if setting is None:
        return None
    return float(setting) if setting != "auto" else large_part_scale(shapes, tile)


def load_gray(path: Path, size: int | None) -> np.ndarray:
    """The image as the station will feed it to the model (edge.preprocess, grey, resized,
    scaled to [0, 1]), so training and the station cannot disagree."""
    img = read_image_or_fail(path)
    p = training_preprocess(size)
    return Preprocessor(p, img.shape[:2] if size is None else (size, size)).to_model_space(img)


def pad_to(image: np.ndarray, side: int) -> np.ndarray:
    """Reflect-pad (bottom, right) to at least side x side, exactly as the station pads a frame
    smaller than the model's tile (edge.preprocess.Preprocessor.tiles)."""
    ph, pw = max(0, side - image.shape[0]), max(0, side - image.shape[1])
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect") if ph or pw else image


def random_patches(images, patch: int, count: int, rng: np.random.Generator, idx=None) -> np.ndarray:
    """`count` random patch x patch crops from (N, H, W) images or a list of (H, W) images of any
    sizes of at least patch x patch (each crop's image drawn evenly, or given: `idx`, then its place)."""
    idx = rng.integers(0, len(images), count) if idx is None else idx
    out = np.empty((count, patch, patch), np.float32)
    for k, i in enumerate(idx):
        h, w = images[i].shape
        y, x = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        out[k] = images[i][y:y + patch, x:x + patch]
    return out


@dataclass
class BatchSource:
    """What a method makes its batches from, and all it sees of a run: the good training images
    (a stack resized to one size, or a list at native scale), the confirmed rejects (train.rejects.
    Reject), the run's random generator and the training crop side (None: whole images)."""

    images: Any
    rng: np.random.Generator
    patch: int | None
    rejects: list = field(default_factory=list)
    coarse_from: int | None = None  # two scales: the images from this index on are the coarse views

    def crops(self, n: int) -> np.ndarray:
        """n random training crops (patch x patch, or whole images), randomly flipped: (n, H, W)."""
        return self.scaled_crops(n)[0]

    def is_coarse(self, index) -> np.ndarray:
        """Whether images[index] (an index or an array of them) is a coarse view."""
        return np.asarray(index) >= (self.coarse_from if self.coarse_from is not None else len(self.images))

    def scaled_crops(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """crops() and, per crop, whether it was cut from a coarse view (the scale plane's value)."""
        idx = self.rng.integers(0, len(self.images), n)
        if self.patch is None:
            crops = np.stack([self.images[i] for i in idx])
        else:
            crops = random_patches(self.images, self.patch, n, self.rng, idx)
        flip = self.rng.random((n, 2)) < 0.5
        for i in range(n):
            if flip[i, 0]:
                crops[i] = crops[i, :, ::-1]
            if flip[i, 1]:
                crops[i] = crops[i, ::-1, :]
        return np.ascontiguousarray(crops, dtype=np.float32), self.is_coarse(idx)
