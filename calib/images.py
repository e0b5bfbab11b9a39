"""Calibration and gate images: drawn deterministically from good images, passed through exactly
the station's preprocessing and tiling (edge.preprocess), so INT8 ranges are measured on the
numbers the engine will see."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.images import evenly, good_images, split_holdout
from edge.images import read_image_or_fail as read_image
from edge.preprocess import Preprocessor
from edge.recipe import Preprocess


def split_good(folder: Path, n_calib: int, n_holdout: int) -> tuple[list[Path], list[Path]]:
    """Disjoint (calibration, held-out) lists: the held-out images by edge.images.split_holdout
    (the hold-out policy edge-train uses too: every k-th file by name, k chosen for about
    n_holdout of them, at most a third of the folder), calibration spread evenly over the rest."""
    files = good_images(Path(folder))
    if len(files) < 2:
        raise InputError(str(folder), None, f"expected at least 2 good images (calibration and held out), "
                                            f"found {len(files)}")
    n_holdout = max(1, min(n_holdout, len(files) // 3))
    kept, held = split_holdout(files, n_holdout / len(files))
    return evenly(kept, n_calib), evenly(held, n_holdout)


def model_tiles(files: list[Path], preprocess: Preprocess, input_shape: tuple[int, int, int, int],
                max_tiles: int = 256) -> np.ndarray:
    """(N, C, H, W) float32 model inputs: every tile of every image as the station cuts it, evenly
    thinned to at most `max_tiles`. The same tiles as cutting all of them and thinning after, but
    only the kept ones are copied: all tiles of 64 five-megapixel frames are gigabytes on an Orin."""
    _, channels, h, w = input_shape
    pre = Preprocessor(preprocess, (h, w), channels)
    counts = [pre.tile_count(*pre.to_model_space(read_image(f)).shape[-2:]) for f in files]
    total = sum(counts)
    keep = np.linspace(0, total - 1, min(total, max_tiles)).round().astype(int)
    out, start = [], 0
    for f, n in zip(files, counts):
        mine = keep[(keep >= start) & (keep < start + n)] - start
        if mine.size:
            out.append(pre.tiles(pre.to_model_space(read_image(f)))[mine].copy())
        start += n
    return np.ascontiguousarray(np.concatenate(out))


def whole_batches(tiles: np.ndarray, batch: int, limit: int | None = None) -> np.ndarray:
    """At most `limit` tiles (rounded down to whole batches, at least one batch), their count a
    multiple of the graph's fixed `batch`: a graph built for batch N takes N tiles a run, and a
    short last batch is filled by repeating the last tile."""
    n = len(tiles) if limit is None else min(len(tiles), limit)
    n = max(batch, n - n % batch)
    if n > len(tiles):
        tiles = np.concatenate([tiles, np.repeat(tiles[-1:], n - len(tiles), axis=0)])
    return np.ascontiguousarray(tiles[:n])
