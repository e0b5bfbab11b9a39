"""Calibration and gate images: drawn deterministically from good images, passed through exactly
the station's preprocessing and tiling (edge.preprocess), so INT8 ranges are measured on the
numbers the engine will see."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.preprocess import Preprocessor
from edge.recipe import Preprocess
from train.data import good_images, read_image


def split_good(folder: Path, n_calib: int, n_holdout: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Disjoint (calibration, held-out) lists drawn by a seeded permutation of the sorted file
    names: the same folder and seed always give the same images. With too few images the held-out
    set takes at most a third and calibration the rest."""
    files = good_images(Path(folder))
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    if len(order) < 2:
        raise InputError(str(folder), None, f"expected at least 2 good images (calibration and held out), "
                                            f"found {len(order)}")
    if n_calib + n_holdout > len(order):  # too few: at most a third held out, the rest calibrates
        n_holdout = min(n_holdout, max(1, len(order) // 3))
        n_calib = len(order) - n_holdout
    return order[n_holdout:n_holdout + n_calib], order[:n_holdout]


def model_tiles(files: list[Path], preprocess: Preprocess, input_shape: tuple[int, int, int, int],
                max_tiles: int = 256) -> np.ndarray:
    """(N, C, H, W) float32 model inputs: every tile of every image as the station cuts it, evenly
    thinned to at most `max_tiles`."""
    _, channels, h, w = input_shape
    pre = Preprocessor(preprocess, (h, w), channels)
    tiles = []
    for f in files:
        tiles.append(pre.tiles(pre.to_model_space(read_image(f))).copy())
    out = np.concatenate(tiles)
    if len(out) > max_tiles:
        out = out[np.linspace(0, len(out) - 1, max_tiles).round().astype(int)]
    return np.ascontiguousarray(out)
