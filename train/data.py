"""Image data for training and evaluation: a folder of good images, or an MVTec-style tree
(train/good, test/<type>, ground_truth/<type>/<name>_mask.png). Grayscale, float32 in [0, 1],
resized to the model's size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.image_file import read_image as edge_read_image
from edge.preprocess import Preprocessor
from edge.recipe import Preprocess
from edge.sources.file import IMAGE_SUFFIXES


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def training_preprocess(size: int | None, tile_overlap: int = 0) -> Preprocess:
    """The preprocessing a model is trained with; export writes this same object into the recipe.
    size None: frames keep their native scale and aspect ratio, the station tiles them."""
    return Preprocess(size=(size, size) if size is not None else None, tile_overlap=tile_overlap)


def read_image(path: Path) -> np.ndarray:
    """An image file as a camera would give it (8/16 bit, grey or colour); unreadable -> InputError."""
    img, reason = edge_read_image(path)
    if img is None:
        raise InputError(str(path), None, reason)
    return img


def load_gray(path: Path, size: int | None) -> np.ndarray:
    """The image as the station will feed it to the model (edge.preprocess, grey, resized,
    scaled to [0, 1]), so training and the station cannot disagree."""
    img = read_image(path)
    p = training_preprocess(size)
    return Preprocessor(p, img.shape[:2] if size is None else (size, size)).to_model_space(img)


def good_images(root: Path) -> list[Path]:
    """train/good of an MVTec tree, or the folder itself."""
    root = Path(root)
    folder = root / "train" / "good" if (root / "train" / "good").is_dir() else root
    if not folder.is_dir():
        raise InputError(str(root), None, "expected a folder of good images or an MVTec tree with train/good")
    files = _images(folder)
    if not files:
        raise InputError(str(folder), None, f"expected good images ({', '.join(sorted(IMAGE_SUFFIXES))}), found none")
    return files


def split_holdout(files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic: every k-th file (by name) is held out for threshold calibration."""
    if fraction <= 0:
        return files, []
    k = max(2, round(1 / fraction))
    return [f for i, f in enumerate(files) if i % k != k - 1], [f for i, f in enumerate(files) if i % k == k - 1]


@dataclass
class TestItem:
    path: Path
    kind: str                 # "good" or the defect type
    mask: Path | None         # ground-truth mask, None for good images (and types without masks)


def test_items(root: Path) -> list[TestItem]:
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise InputError(str(root), None, "expected an MVTec-style tree with test/<type>/ (and ground_truth/<type>/)")
    items = []
    for kind_dir in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in _images(kind_dir):
            mask = None
            if kind_dir.name != "good":
                candidate = root / "ground_truth" / kind_dir.name / f"{img.stem}_mask.png"
                mask = candidate if candidate.is_file() else None
            items.append(TestItem(img, kind_dir.name, mask))
    if not items:
        raise InputError(str(test), None, "no test images found")
    return items


def load_mask(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    if path is None:
        return np.zeros(shape, np.uint8)
    m, reason = edge_read_image(path)
    if m is None:
        raise InputError(str(path), None, f"mask: {reason}")
    if m.ndim == 3:
        m = cv2.cvtColor(m, cv2.COLOR_BGR2GRAY)
    if m.dtype != np.uint8:
        m = (m >> 8).astype(np.uint8)
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return (m >= 128).astype(np.uint8)


def pad_to(image: np.ndarray, side: int) -> np.ndarray:
    """Reflect-pad (bottom, right) to at least side x side, exactly as the station pads a frame
    smaller than the model's tile (edge.preprocess.Preprocessor.tiles)."""
    ph, pw = max(0, side - image.shape[0]), max(0, side - image.shape[1])
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect") if ph or pw else image


def random_patches(images, patch: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random patch x patch crops from (N, H, W) images or a list of (H, W) images of any
    sizes of at least patch x patch (each crop's image drawn evenly, then its place)."""
    idx = rng.integers(0, len(images), count)
    out = np.empty((count, patch, patch), np.float32)
    for k, i in enumerate(idx):
        h, w = images[i].shape
        y, x = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        out[k] = images[i][y:y + patch, x:x + patch]
    return out
