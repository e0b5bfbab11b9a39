"""The station's own rejects as training data: a few confirmed defective images, with or without
pixel masks (`rejects:` in train.yaml; the folder layout is edge.images.reject_items).

They enter training three ways (the method decides the odds):
- as they are: a crop around the defect with its mask as the target, drawn often, since there
  are few of them (Tabernik et al. 2019; Bozic et al. 2021: a handful of real defects per type
  lifts a from-scratch segmenter more than any synthetic trick);
- pasted: the defect cut out of its reject and Poisson-blended (cv2.seamlessClone) into a good
  crop elsewhere, so one real defect is seen on many backgrounds;
- without a mask, as an image-level label: up to BAG_TILES crops of the reject make a bag whose
  target is BAG (every pixel), read by the loss as "some pixel of this bag is a defect" (the
  top-k image loss), never as a pixel target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.images import good_images, load_mask, read_image_or_fail, reject_items, test_items
from edge.preprocess import scaled_frame

from .data import load_gray, pad_to

BAG = -1.0        # target value of an image-level-labelled crop: no pixel target, some pixel is a defect
BAG_TILES = 4     # crops drawn from one mask-less reject per batch


@dataclass
class Reject:
    image: np.ndarray          # float32 (H, W) in model space, padded to at least the crop side
    mask: np.ndarray | None    # uint8 {0, 1} at the image's shape, None = image-level label
    name: str

    def defect_pixels(self) -> np.ndarray:
        return np.argwhere(self.mask > 0)


def load_rejects(folder: Path, side: int, working_scale: float = 1.0) -> list[Reject]:
    """Every reject in `folder` as the station would feed it (at the run's working scale, reflect-
    padded as the station pads a frame smaller than its tile), its mask at the same scale. A mask
    that marks nothing is an error: an empty mask is no label at all."""
    out = []
    for path, mask_path in reject_items(folder):
        img = load_gray(path, None)
        if working_scale != 1.0:
            img = scaled_frame(img, working_scale)
        mask = None
        if mask_path is not None:
            mask = load_mask(mask_path, img.shape[:2])
            if not mask.any():
                raise InputError(str(mask_path), None, "expected a mask with defect pixels (white), found none; "
                                                       "remove it to use the image as an image-level label")
            mask = pad_to(mask, side)
        out.append(Reject(pad_to(img, side), mask, path.name))
    return out


def _digest(path: Path) -> str:
    return hashlib.sha1(read_image_or_fail(path).tobytes()).hexdigest()


def check_no_overlap(rejects: Path, data: Path, where: str):
    """Refuse a rejects folder that shares an image (by pixels, whatever the file name) with the
    data's test set or its good images: evaluation would then be measured on training data, or a
    part would be both good and defective."""
    mine = {_digest(p): p for p, _ in reject_items(rejects)}
    others: list[tuple[Path, str]] = []
    if (data / "test").is_dir() and any(p.is_dir() and any(p.iterdir()) for p in (data / "test").iterdir()):
        others += [(it.path, "the test set") for it in test_items(data)]
    others += [(p, "the good images") for p in good_images(data)]
    for path, what in others:
        d = _digest(path)
        if d in mine:
            raise InputError(where, "rejects", f"expected rejects apart from {what}: {mine[d].name} is the same "
                                               f"image as {path}")


def crop_around_defect(r: Reject, side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A side x side crop of a masked reject that holds defect pixels (a random one of them, at a
    random place in the crop), and its mask."""
    h, w = r.image.shape
    py, px = r.defect_pixels()[rng.integers(len(r.defect_pixels()))]
    y = int(np.clip(py - rng.integers(0, side), 0, h - side))
    x = int(np.clip(px - rng.integers(0, side), 0, w - side))
    return r.image[y:y + side, x:x + side].copy(), r.mask[y:y + side, x:x + side].astype(np.float32)


def bag_crops(r: Reject, side: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` crops spread over a mask-less reject: (count, side, side)."""
    h, w = r.image.shape
    ys = rng.integers(0, h - side + 1, count)
    xs = rng.integers(0, w - side + 1, count)
    return np.stack([r.image[y:y + side, x:x + side] for y, x in zip(ys, xs)])


def paste_defect(good: np.ndarray, r: Reject, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One defect of a masked reject (an 8-connected region of its mask, with 4 pixels of its
    surroundings) Poisson-blended into the good crop at a random place and orientation:
    the defect's gradients are kept and its surroundings take the good crop's brightness. Returns
    (image, mask); the mask is the defect's own pixels where they landed."""
    h, w = good.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(r.mask, connectivity=8)
    k = int(rng.integers(1, count))
    x0, y0, bw, bh = stats[k, :4]
    pad = 8  # room for the blend's margin below
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(r.image.shape[0], y0 + bh + 2 * pad), min(r.image.shape[1], x0 + bw + 2 * pad)
    patch = r.image[y0:y1, x0:x1]
    defect = (labels[y0:y1, x0:x1] == k).astype(np.uint8)
    turns = int(rng.integers(0, 4))
    patch, defect = np.rot90(patch, turns), np.rot90(defect, turns)
    if rng.random() < 0.5:
        patch, defect = patch[:, ::-1], defect[:, ::-1]
    ph, pw = patch.shape
    if ph >= h - 2 or pw >= w - 2:  # larger than the crop: keep a crop-sized window of it
        cy, cx = min(ph, h - 4), min(pw, w - 4)
        oy, ox = int(rng.integers(0, ph - cy + 1)), int(rng.integers(0, pw - cx + 1))
        patch, defect = patch[oy:oy + cy, ox:ox + cx], defect[oy:oy + cy, ox:ox + cx]
        ph, pw = patch.shape
    if not defect.any():
        return good, np.zeros_like(good)
    # OpenCV erodes the clone mask internally: a margin of 4 pixels keeps the defect's own edge
    region = cv2.dilate(defect, np.ones((9, 9), np.uint8))
    region[0, :] = region[-1, :] = 0
    region[:, 0] = region[:, -1] = 0
    if not region.any():
        return good, np.zeros_like(good)
    cy = int(rng.integers(ph // 2 + 1, h - (ph - ph // 2)))
    cx = int(rng.integers(pw // 2 + 1, w - (pw - pw // 2)))
    to8 = lambda a: cv2.cvtColor(np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)  # noqa: E731
    blended = cv2.seamlessClone(to8(np.ascontiguousarray(patch)), to8(good), region * 255, (cx, cy),
                                cv2.NORMAL_CLONE)
    out = cv2.cvtColor(blended, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    # seamlessClone centres the region's bounding box at (cx, cy): place the defect mask the same way
    ys, xs = np.nonzero(region)
    top, left = cy - (ys.min() + ys.max() + 1) // 2, cx - (xs.min() + xs.max() + 1) // 2
    mask = np.zeros_like(good)
    sub = mask[max(0, top):top + ph, max(0, left):left + pw]
    sub[:] = defect[max(0, -top):max(0, -top) + sub.shape[0], max(0, -left):max(0, -left) + sub.shape[1]]
    # 8-bit blending rounds every pixel: keep the good crop where nothing was pasted
    keep = cv2.dilate(region, np.ones((3, 3), np.uint8))
    placed = np.zeros((h, w), np.uint8)
    placed[max(0, top):top + ph, max(0, left):left + pw] = keep[max(0, -top):max(0, -top) + sub.shape[0],
                                                                max(0, -left):max(0, -left) + sub.shape[1]]
    return np.where(placed > 0, out, good).astype(np.float32), mask
