"""Synthetic defects, deterministic under a seed. Each returns (image, mask): the image float32 in
[0, 1] and the mask uint8 {0, 1}, exactly the pixels whose value changed (by at least 1/255;
smaller changes are reverted so the mask stays exact).

- pseudo_defect (seed 000): a shape (rectangle, line, triangle, convex polygon or a closed cubic
  Bezier blob) filled with a base colour (white, grey or black) attenuated from the shape's centre
  to its edge by a Gaussian, plus noise. How strong, dark, soft-edged and large the defects are
  is set per application (the paper: "set according to the actual situation"; the unet's
  `options.pseudo` in train.yaml).
- adga (seed 003, eq. 1): I_AD = Paste(I_T, GB(Resize(crop(I_S)))): a polygon of 3-7 vertices cut
  from a source image, resized, its edge Gaussian-blurred, pasted at a random place.
"""

from __future__ import annotations

import cv2
import numpy as np

SHAPES = ("rectangle", "line", "triangle", "polygon", "bezier")  # seed 000's shapes, drawn by default
EXTRA_SHAPES = ("band",)  # a strip across the whole patch: a brightness step (uneven surfaces); by odds only
SHAPE_ODDS = (1.0,) * len(SHAPES) + (0.0,) * len(EXTRA_SHAPES)
COLOURS = {"white": 1.0, "grey": 0.5, "black": 0.0}
MIN_CHANGE = 1 / 255


def _draw(rng: np.random.Generator, names, odds=None) -> str:
    """One of `names` by `odds` (None: all even). Even odds over the names that can be drawn take
    one integer from rng, as the generator always did, so the same seed paints the same defect."""
    if odds is None:
        return names[rng.integers(len(names))]
    odds = np.asarray(odds, np.float64)
    live = [n for n, o in zip(names, odds) if o > 0]
    if np.all(odds[odds > 0] == odds[odds > 0][0]):
        return live[rng.integers(len(live))]
    return names[rng.choice(len(names), p=odds / odds.sum())]


def _exact(original: np.ndarray, out: np.ndarray):
    changed = np.abs(out - original) >= MIN_CHANGE
    out = np.where(changed, out, original).astype(np.float32)
    return out, changed.astype(np.uint8)


def _convex_polygon(rng, cx, cy, radius, n):
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    pts = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
    hull = cv2.convexHull(pts.astype(np.float32))
    return hull.astype(np.int32)


def _bezier_blob(rng, cx, cy, radius, n=6, samples=24):
    """A closed, smooth curve: cubic Bezier segments through random points around the centre,
    control points along the neighbours' chord (Catmull-Rom style) so the joins are smooth."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.5, 1.0, n)
    p = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    curve = []
    for i in range(n):
        p0, p3 = p[i], p[(i + 1) % n]
        p1 = p0 + (p3 - p[i - 1]) / 6
        p2 = p3 - (p[(i + 2) % n] - p0) / 6
        curve.append((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
    return np.concatenate(curve).astype(np.int32)


def shape_mask(rng: np.random.Generator, h: int, w: int, shape: str, size: float, margin: float = 0.15) -> np.ndarray:
    """A filled shape (or a line) of about `size` pixels, centred at least `margin` (a share of the
    side) from the border; margin 0 lets shapes run off the edge, as chipped edges do."""
    mask = np.zeros((h, w), np.uint8)
    cx, cy = rng.uniform(margin, 1 - margin) * w, rng.uniform(margin, 1 - margin) * h
    if shape == "rectangle":
        a, b = size * rng.uniform(0.3, 1.0), size * rng.uniform(0.3, 1.0)
        box = ((cx, cy), (a, b), rng.uniform(0, 180))
        cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 1)
    elif shape == "line":
        ang = rng.uniform(0, np.pi)
        dx, dy = size * np.cos(ang), size * np.sin(ang)
        cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, int(rng.integers(1, 4)))
    elif shape == "triangle":
        cv2.fillPoly(mask, [_convex_polygon(rng, cx, cy, size, 3)], 1)
    elif shape == "polygon":
        cv2.fillPoly(mask, [_convex_polygon(rng, cx, cy, size, int(rng.integers(5, 9)))], 1)
    elif shape == "bezier":
        cv2.fillPoly(mask, [_bezier_blob(rng, cx, cy, size)], 1)
    elif shape == "band":
        half = max(1, int(size))
        if rng.random() < 0.5:
            mask[max(0, int(cy) - half):int(cy) + half] = 1
        else:
            mask[:, max(0, int(cx) - half):int(cx) + half] = 1
    else:
        raise ValueError(f"unknown shape {shape}")
    return mask


def pseudo_defect(image: np.ndarray, seed: int, shape: str | None = None, colour: str | None = None,
                  size_range=(0.04, 0.18), noise: float = 0.04, strength=(0.7, 1.0),
                  colour_weights: tuple[float, float, float] | None = None, feather: float = 0.0,
                  margin: float = 0.15, shape_weights: tuple[float, ...] | None = None):
    """Paint one pseudo-defect. The paper leaves the attenuation "set according to the actual
    situation": `strength` is the range of the base colour's weight at the centre (low values give
    faint defects: a dark stain at 0.3 darkens the surface by 30 %), `colour_weights` the odds of
    white, grey and black, `feather` a Gaussian sigma in pixels that softens the shape's edge,
    `margin` how far from the border (a share of the side) the shape's centre stays,
    `shape_weights` the odds of SHAPES + EXTRA_SHAPES (None: SHAPE_ODDS, seed 000's five evenly)."""
    rng = np.random.default_rng(seed)
    img = image.astype(np.float32)
    h, w = img.shape
    shape = shape or _draw(rng, SHAPES + EXTRA_SHAPES, shape_weights or SHAPE_ODDS)
    colour = colour or _draw(rng, list(COLOURS), colour_weights)
    size = rng.uniform(*size_range) * min(h, w)
    mask = shape_mask(rng, h, w, shape, size, margin)
    if not mask.any():
        mask[int(h / 2), int(w / 2)] = 1
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    sigma = max(2.0, 0.6 * max(np.ptp(ys) + 1, np.ptp(xs) + 1))
    # Only the shape's box, grown by the feather's reach (OpenCV's kernel radius is 4 sigma), can
    # change: computed there alone, at half the cost (training paints several of these per batch),
    # with the values the whole image gets to float rounding (<= 1e-7; the masks identical). The
    # noise draw keeps the full image's row-major order, so the box gets the same noise.
    pad = int(np.ceil(4 * feather)) + 2 if feather > 0 else 0
    y0, y1 = max(0, int(ys.min()) - pad), min(h, int(ys.max()) + 1 + pad)
    x0, x1 = max(0, int(xs.min()) - pad), min(w, int(xs.max()) + 1 + pad)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    alpha = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)) * rng.uniform(*strength)
    base = COLOURS[colour] + rng.normal(0, noise, (y1, w))[y0:, x0:x1]
    box = mask[y0:y1, x0:x1]
    if feather > 0:  # soft edge: the shape's weight falls off outside it, the mask follows (exact)
        alpha = alpha * np.minimum(1.0, cv2.GaussianBlur(box.astype(np.float32), (0, 0), feather) * 2)
        m = alpha >= MIN_CHANGE / 4
    else:
        m = box > 0
    inside = img[y0:y1, x0:x1]
    painted = inside.copy()
    painted[m] = np.clip(inside[m] * (1 - alpha[m]) + base[m] * alpha[m], 0, 1)
    painted, changed = _exact(inside, painted)
    out, out_mask = img.copy(), np.zeros((h, w), np.uint8)
    out[y0:y1, x0:x1], out_mask[y0:y1, x0:x1] = painted, changed
    return out, out_mask


def _polygon_in_box(rng, w, h, n):
    cx, cy = w / 2, h / 2
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.35, 0.5, n)[:, None] * np.array([w, h])
    return np.stack([cx + r[:, 0] * np.cos(angles), cy + r[:, 1] * np.sin(angles)], 1).astype(np.int32)


def adga(target: np.ndarray, source: np.ndarray, seed: int, size_range=(0.05, 0.25), blur_sigma: float = 1.5):
    """Seed 003's artificial defect: crop a 3-7 vertex polygon from `source`, resize, blur its edge,
    paste into `target` at a random place."""
    rng = np.random.default_rng(seed)
    tgt = target.astype(np.float32)
    src = source.astype(np.float32)
    h, w = tgt.shape
    sh, sw = src.shape
    cw, ch = (int(rng.uniform(0.1, 0.4) * d) + 4 for d in (sw, sh))
    x0, y0 = int(rng.integers(0, max(1, sw - cw))), int(rng.integers(0, max(1, sh - ch)))
    crop = src[y0:y0 + ch, x0:x0 + cw]
    poly = _polygon_in_box(rng, crop.shape[1], crop.shape[0], int(rng.integers(3, 8)))
    cut = np.zeros(crop.shape, np.float32)
    cv2.fillPoly(cut, [poly], 1.0)
    side = max(4, int(rng.uniform(*size_range) * min(h, w)))
    scale = side / max(crop.shape)
    size = (max(2, int(crop.shape[1] * scale)), max(2, int(crop.shape[0] * scale)))
    patch = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(cv2.resize(cut, size, interpolation=cv2.INTER_NEAREST), (0, 0), blur_sigma)
    py, px = int(rng.integers(0, h - size[1] + 1)), int(rng.integers(0, w - size[0] + 1))
    out = tgt.copy()
    region = out[py:py + size[1], px:px + size[0]]
    out[py:py + size[1], px:px + size[0]] = region * (1 - alpha) + patch * alpha
    return _exact(tgt, np.clip(out, 0, 1))
