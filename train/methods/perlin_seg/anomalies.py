"""Synthetic anomalies of the DRAEM family, drawn on good training crops.

A mask is thresholded Perlin noise (blobs, streaks and bands of random scale and direction); the
masked area is filled with texture that does not belong there, blended in at a random opacity:

- foreign: a crop from another good image, turned by 90/180/270 degrees or mirrored across the
  diagonal, rescaled, with its brightness and contrast changed (the grain runs the wrong way);
- smooth: the crop itself blurred (the surface's texture is missing, as on worn or unground areas);
- shift: the crop itself darker or brighter, with more or less contrast (stains, burns, holes);
- invert: the crop's grey levels inverted.

Nothing here knows the part: every fill is built from the good images themselves, so the same
generator serves metal, textiles or plastics, grey or colour. Seed 000's pseudo-defects (small
shapes: spots, lines) are mixed in by the method, which owns the odds.

crack_anomaly draws the other shape a surface defect often takes: a crack, a thin (1-3 px) dark
line that wanders, often from the crop's edge, sometimes with a branch, long against its width;
Perlin masks and seed 000's straight, centre-faded lines do not make such shapes. On a surface with
a grain (ground, brushed or rolled metal, wood, fabric) the crack that hides is the one running
with it, straight, among the grain's own lines: grain_angle reads the crop's direction from the
structure tensor of its fine texture where the whole crop agrees on one (a part's own ribs, edges
or rim fill only some of it and are not grain), and the method draws a share of its cracks that way.

band_anomaly draws a region finished differently: one side of a near-straight edge, or a strip
between two, brighter or darker and with a stronger or weaker grain (a second grinding or polishing
pass, uneven wear). Its edge is sharp and long where Perlin masks are soft blobs. Without rejects the
method draws it as the smaller side of its edge (at most 45 % of the crop): a defect is the smaller
part of a surface, and a network shown two regions must be told which one is wrong.
"""

from __future__ import annotations

import cv2
import numpy as np

BAND_COVER = (0.1, 0.7)  # the share of the crop a band covers unless the method says otherwise
SMALLER_SIDE = (0.1, 0.45)  # a band that is the smaller side of its edge (perlin_seg without rejects)
FILLS = ("foreign", "smooth", "shift", "invert")
FILL_ODDS = (0.2, 0.35, 0.35, 0.1)
MIN_VISIBLE = 0.02  # mean |change| inside the mask below which an anomaly counts as invisible


def _fade(t):
    return 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3


def perlin(h: int, w: int, res_y: int, res_x: int, rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin gradient noise (about -0.7..0.7) with res_y x res_x lattice cells over the image."""
    angles = rng.uniform(0, 2 * np.pi, (res_y + 1, res_x + 1))
    gy, gx = np.sin(angles), np.cos(angles)
    y = np.linspace(0, res_y, h, endpoint=False)
    x = np.linspace(0, res_x, w, endpoint=False)
    iy, ix = y.astype(np.int64), x.astype(np.int64)
    fy, fx = (y - iy)[:, None], (x - ix)[None, :]

    def corner(dy, dx):  # rows first, then columns: two cheap gathers instead of one per pixel
        return (np.take(gy[iy + dy], ix + dx, axis=1) * (fy - dy)
                + np.take(gx[iy + dy], ix + dx, axis=1) * (fx - dx))

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (top * (1 - uy) + bottom * uy).astype(np.float32)


def perlin_mask(h: int, w: int, rng: np.random.Generator, max_res_log2: int = 5) -> np.ndarray:
    """A binary mask from thresholded Perlin noise: scale drawn per axis (2^0 .. 2^max_res_log2
    cells) and the covered share log-uniform in 0.3-50 %, so masks range from large bands to
    small spots and thin streaks. Never empty."""
    for _ in range(8):
        ry, rx = (2 ** int(rng.integers(0, max_res_log2 + 1)) for _ in range(2))
        noise = perlin(h, w, ry, rx, rng)
        if rng.random() < 0.5:  # any direction, not just the lattice's
            m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-90, 90), 1.0)
            noise = cv2.warpAffine(noise, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        cover = float(np.exp(rng.uniform(np.log(0.003), np.log(0.5))))  # share of the crop, log-uniform
        mask = noise > np.quantile(noise, 1 - cover)
        if mask.sum() >= 16:
            return mask.astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cy, cx = int(rng.integers(h // 4, 3 * h // 4)), int(rng.integers(w // 4, 3 * w // 4))
    mask[cy - 3:cy + 3, cx - 3:cx + 3] = 1
    return mask


def _foreign(crop: np.ndarray, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = crop.shape
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    sh, sw = min(source.shape[0], max(8, int(h / scale))), min(source.shape[1], max(8, int(w / scale)))
    y, x = int(rng.integers(0, source.shape[0] - sh + 1)), int(rng.integers(0, source.shape[1] - sw + 1))
    tex = source[y:y + sh, x:x + sw]
    # turned by 90 or 270 degrees or mirrored across a diagonal: a directional texture (grain,
    # weave, brushing) then runs across its usual direction; a 180-degree turn would not show
    k = int(rng.integers(0, 4))
    tex = np.rot90(tex, 1 + 2 * k) if k < 2 else (tex.T if k == 2 else np.rot90(tex, 2).T)
    tex = cv2.resize(np.ascontiguousarray(tex), (w, h), interpolation=cv2.INTER_LINEAR)
    offset = rng.choice([-1, 1]) * rng.uniform(0.02, 0.15)
    return (tex - tex.mean()) * rng.uniform(0.6, 1.6) + crop.mean() + offset


def _fill(crop: np.ndarray, source: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "foreign":
        return _foreign(crop, source, rng)
    if kind == "smooth":
        blurred = cv2.GaussianBlur(crop, (0, 0), rng.uniform(1.5, 6.0))
        return blurred + rng.uniform(-0.12, 0.12)
    if kind == "shift":
        mean = crop.mean()
        return (crop - mean) * rng.uniform(0.5, 1.5) + mean + rng.choice([-1, 1]) * rng.uniform(0.05, 0.3)
    return 1.0 - crop


def perlin_anomaly(crop: np.ndarray, source: np.ndarray, rng: np.random.Generator,
                   opacity=(0.3, 1.0), fill_odds=FILL_ODDS) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask): `crop` (H, W float32 in [0, 1]) with one anomaly; the mask (uint8 {0, 1}) is
    the Perlin mask where the image visibly changed. `source` is another good image (any size at
    least as large as the crop after the drawn rescale; smaller is cropped to what it has)."""
    h, w = crop.shape
    for _ in range(4):
        mask = perlin_mask(h, w, rng)
        kind = FILLS[rng.choice(len(FILLS), p=np.asarray(fill_odds) / np.sum(fill_odds))]
        fill = _fill(crop, source, kind, rng)
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8) * rng.uniform(*opacity)
        out = np.clip(crop * (1 - alpha) + fill * alpha, 0, 1).astype(np.float32)
        if np.abs(out - crop)[mask > 0].mean() >= MIN_VISIBLE:
            return out, mask
    return crop, np.zeros((h, w), np.uint8)


def _orientation(xx, yy, xy):
    """(direction the texture runs along in radians, coherence 0-1) of structure-tensor means
    (floats, or arrays of them: one per block)."""
    total = np.asarray(xx + yy, np.float64)
    angle = 0.5 * np.arctan2(2 * xy, xx - yy) + np.pi / 2
    coherence = np.where(total > 0, np.hypot(xx - yy, 2 * xy) / np.where(total > 0, total, 1), 0.0)
    return angle, coherence


def grain_angle(crop: np.ndarray, blocks: int = 4) -> float | None:
    """The direction (radians, image x/y) the crop's grain runs along, or None where it has none.
    Read from the structure tensor of the fine texture (the crop less its 2-px blur, so light
    gradients do not count) and kept only where the whole crop agrees: coherence >= 0.3 overall
    and in 3/4 of a blocks x blocks grid the local direction within 15 degrees of it. A grain
    covers the surface; a part's own lines (ribs, edges, a rim) fill a few blocks and are refused."""
    fine = crop - cv2.GaussianBlur(crop, (0, 0), 2.0)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)
    tensor = (gx * gx, gy * gy, gx * gy)
    angle, coherence = _orientation(*(float(t.mean()) for t in tensor))
    if coherence < 0.3:
        return None
    h, w = crop.shape[0] // blocks, crop.shape[1] // blocks
    local, local_coherence = _orientation(*(t[:h * blocks, :w * blocks].reshape(blocks, h, blocks, w).mean(axis=(1, 3))
                                            for t in tensor))
    agree = (local_coherence >= 0.2) & (np.abs((local - angle + np.pi / 2) % np.pi - np.pi / 2) <= np.radians(15))
    return float(angle) if agree.sum() >= 0.75 * blocks * blocks else None


def crack_path(h: int, w: int, rng: np.random.Generator, along: float | None = None) -> list[np.ndarray]:
    """The polylines (int32 (N, 2) x, y) of one crack: a random walk of 3-px steps whose heading
    drifts, 15-100 % of the crop's side long, starting on the crop's edge half of the time, with a
    shorter branch one time in three. `along` (radians): a near-straight crack in that direction,
    from anywhere in the crop (a crack that runs with the grain hides among its lines)."""
    side = min(h, w)
    length = side * float(np.exp(rng.uniform(np.log(0.15), 0.0)))
    if along is not None:
        start = (rng.uniform(0, w - 1), rng.uniform(0, h - 1))
        heading = along + rng.choice([0, np.pi]) + rng.normal(0, 0.03)
        return [_walk(start, heading, max(2, int(length / 3)), rng.uniform(0, 0.03), rng)]
    if rng.random() < 0.5:  # from an edge, heading inwards
        edge = int(rng.integers(4))
        t = rng.uniform(0.1, 0.9)
        start = [(t * w, 0.0), (w - 1.0, t * h), (t * w, h - 1.0), (0.0, t * h)][edge]
        heading = np.pi / 2 * (edge + 1) + rng.normal(0, 0.4)
    else:
        start = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h)
        heading = rng.uniform(0, 2 * np.pi)
    wander = rng.uniform(0.05, 0.35)  # radians of heading change per step: straight to tortuous
    paths = [_walk(start, heading, max(2, int(length / 3)), wander, rng)]
    if rng.random() < 1 / 3:
        main = paths[0]
        k = int(rng.integers(len(main) // 4, max(len(main) // 4 + 1, 3 * len(main) // 4)))
        paths.append(_walk(main[k], heading + rng.choice([-1, 1]) * rng.uniform(0.3, 1.0),
                           max(2, int(length * rng.uniform(0.2, 0.5) / 3)), wander, rng))
    return paths


def _walk(p0, angle: float, steps: int, wander: float, rng: np.random.Generator) -> np.ndarray:
    """A random walk of 3-px steps whose heading drifts by `wander` radians (sd) a step."""
    pts, a = [np.asarray(p0, np.float64)], angle
    for _ in range(steps):
        a += rng.normal(0, wander)
        pts.append(pts[-1] + 3.0 * np.array([np.cos(a), np.sin(a)]))
    return np.round(np.stack(pts)).astype(np.int32)


def crack_anomaly(crop: np.ndarray, rng: np.random.Generator,
                  with_grain: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask): `crop` (H, W float32 in [0, 1]) with one crack: the surface darkened along
    the crack's path by 15-70 % (brightened one time in six: a scratch catching the light), its
    edge anti-aliased; the mask is the line's core (its weight at least a third of its peak), the
    faint anti-aliased fringe left out. With odds `with_grain` the crack runs straight along the
    crop's texture where it has a direction (grain_angle)."""
    h, w = crop.shape
    along = grain_angle(crop) if with_grain and rng.random() < with_grain else None
    for _ in range(4):
        line = np.zeros((h, w), np.float32)
        width = int(rng.integers(1, 4))
        cv2.polylines(line, crack_path(h, w, rng, along), False, 1.0, width, lineType=cv2.LINE_AA)
        line = cv2.GaussianBlur(line, (0, 0), 0.6) * rng.uniform(0.15, 0.7)
        out = crop * (1 - line) if rng.random() < 5 / 6 else crop + (1 - crop) * line
        out = np.clip(out, 0, 1).astype(np.float32)
        mask = (line >= line.max() / 3) & (np.abs(out - crop) >= MIN_VISIBLE / 2)
        if mask.sum() >= 8:
            return out, mask.astype(np.uint8)
    return crop, np.zeros((h, w), np.uint8)


def band_region(h: int, w: int, rng: np.random.Generator, cover: tuple[float, float] = BAND_COVER) -> np.ndarray:
    """The weight (H, W float32 in [0, 1]) of a band: one side of a line at any angle (a strip
    between two parallel lines one time in two), its edge wavy by up to 4 px and 0.5-3 px soft,
    covering `cover` (low, high shares) of the crop."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(8):
        a = rng.uniform(0, np.pi)
        d = (xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)  # signed distance from the centre line
        d = d + perlin(h, w, 2, 2, rng) * rng.uniform(0, 6)      # the edge is not ruled
        if rng.random() < 0.5:
            t = float(np.quantile(d, rng.uniform(1 - cover[1], 1 - cover[0])))
            inside = d - t
        else:
            lo, hi = np.quantile(d, sorted(rng.uniform(0, 1, 2)))
            inside = np.minimum(d - lo, hi - d)
        weight = np.clip(0.5 + inside / rng.uniform(0.5, 3.0), 0, 1).astype(np.float32)
        if cover[0] <= weight.mean() <= cover[1]:
            return weight
    # no draw fitted: the right-hand side, half the crop or `cover`'s high share if less
    return np.clip(0.5 + (xx - w * max(0.5, 1 - cover[1])) / 2, 0, 1).astype(np.float32)


def band_anomaly(crop: np.ndarray, rng: np.random.Generator,
                 cover: tuple[float, float] = BAND_COVER) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask): `crop` (H, W float32 in [0, 1]) with one band: inside it the local mean
    shifted by 3-15 % of the range (either way) and the grain (the crop less its 4-px blur)
    strengthened 1.2-2.2 times or weakened to 0.3-0.8; the mask is where the band's weight is at
    least a half and the image visibly changed."""
    h, w = crop.shape
    base = cv2.GaussianBlur(crop, (0, 0), 4.0)
    grain = crop - base
    for _ in range(4):
        weight = band_region(h, w, rng, cover)
        gain = rng.uniform(1.2, 2.2) if rng.random() < 0.6 else rng.uniform(0.3, 0.8)
        fill = base + grain * gain + rng.choice([-1, 1]) * rng.uniform(0.03, 0.15)
        out = np.clip(crop * (1 - weight) + fill * weight, 0, 1).astype(np.float32)
        mask = (weight >= 0.5) & (np.abs(out - crop) >= MIN_VISIBLE / 2)
        if mask.sum() >= 64:
            return out, mask.astype(np.uint8)
    return crop, np.zeros((h, w), np.uint8)
