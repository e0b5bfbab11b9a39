"""Calibration and gate images: drawn deterministically from good images, passed through exactly
the station's preprocessing and tiling (edge.preprocess), so INT8 ranges are measured on the
numbers the engine will see."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.preprocess import Preprocessor
from edge.recipe import Preprocess
from train.data import good_images


def split_good(folder: Path, n_calib: int, n_holdout: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Disjoint (calibration, held-out) lists drawn by a seeded permutation of the sorted file
    names: the same folder and seed always give the same images. With too few images the held-out
    set takes a third and calibration the rest."""
    files = good_images(Path(folder))
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    if len(order) < 2:
        raise InputError(str(folder), None, f"expected at least 2 good images (calibration and held out), "
                                            f"found {len(order)}")
    if n_calib + n_holdout > len(order):
        n_holdout = max(1, len(order) // 3)
        n_calib = len(order) - n_holdout
    return order[n_holdout:n_holdout + n_calib], order[:n_holdout]


def read_frame(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(str(path), None, "unreadable image (expected PNG/JPEG/BMP/TIFF a camera would give)")
    return img


def model_tiles(files: list[Path], preprocess: Preprocess, input_shape: tuple[int, int, int, int],
                max_tiles: int = 256) -> np.ndarray:
    """(N, C, H, W) float32 model inputs: every tile of every image as the station cuts it, evenly
    thinned to at most `max_tiles`."""
    _, channels, h, w = input_shape
    pre = Preprocessor(preprocess, (h, w), channels)
    tiles = []
    for f in files:
        tiles.append(pre.tiles(pre.to_model_space(read_frame(f))).copy())
    out = np.concatenate(tiles)
    if len(out) > max_tiles:
        out = out[np.linspace(0, len(out) - 1, max_tiles).round().astype(int)]
    return np.ascontiguousarray(out)
