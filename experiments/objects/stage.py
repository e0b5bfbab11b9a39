"""A staged object set for docs/ACCURACY.md: large round parts (a container's base seen from
above, 896x896 pixels, mono) whose defects need the part's context, next to thin ones that need
resolution. Built from scikit-image's bundled photos, so it is the same on every machine:

    python3 stage.py runs/data          # an MVTec tree: train/good, test/<type>, ground_truth/<type>

Each part: a dark background, a bright rim (radius about 330 px), a ring of moulded ribs and a
textured floor (a crop of the gravel photo), at a random position (+-24 px), turn, brightness,
light gradient and sensor noise. Defect types, 30 each, with exact masks:

- `broken`: a bite out of the rim (an ellipse of background, 50-130 px) -- a large structural
  defect, visible only against the rim's circle;
- `contamination`: a blob of foreign texture (the cat photo's fur or the coffee photo), 40-140 px,
  with a soft edge, on the floor or the ribs;
- `missing_rib`: one of the 24 ribs left out -- the part looks plausible locally, wrong only as a
  whole;
- `crack`: a thin dark line (1-2 px, 80-240 px long, slightly bent) on the floor or rim.

The good parts' floor textures are crops of one photo, so a model can learn them; the foreign
textures appear nowhere in train/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

SIZE = 896
RIBS = 24
TYPES = ("broken", "contamination", "missing_rib", "crack")


def _gray(img: np.ndarray) -> np.ndarray:
    img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return img.astype(np.float32) / 255.0


FLOOR = _gray(skdata.gravel())
FOREIGN = (_gray(skdata.chelsea()), _gray(skdata.coffee()))


def _part(rng: np.random.Generator, skip_rib: int | None = None) -> tuple[np.ndarray, dict]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = SIZE / 2 + rng.uniform(-24, 24), SIZE / 2 + rng.uniform(-24, 24)
    turn = rng.uniform(0, 2 * np.pi)
    r = np.hypot(yy - cy, xx - cx)
    a = np.arctan2(yy - cy, xx - cx) - turn
    img = np.full((SIZE, SIZE), 0.08, np.float32)  # background
    # floor: a rotated crop of the gravel photo, scaled to the disc
    m = cv2.getRotationMatrix2D((256, 256), float(np.degrees(turn)), 1.0)
    floor = cv2.warpAffine(FLOOR, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    floor = cv2.resize(floor, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    shift = np.float32([[1, 0, cx - SIZE / 2], [0, 1, cy - SIZE / 2]])
    floor = cv2.warpAffine(floor, shift, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    inside = r < 230
    img[inside] = 0.25 + 0.5 * floor[inside]
    # ring of ribs between 240 and 290 px
    ribs = (r >= 240) & (r < 290)
    img[ribs] = 0.30
    phase = (a % (2 * np.pi / RIBS)) / (2 * np.pi / RIBS)
    rib_index = np.floor((a % (2 * np.pi)) / (2 * np.pi / RIBS)).astype(int)
    on_rib = ribs & (np.abs(phase - 0.5) < 0.18)
    if skip_rib is not None:
        on_rib &= rib_index != skip_rib
    img[on_rib] = 0.62
    # rim: bright, shaded across its width
    rim = (r >= 290) & (r < 330)
    img[rim] = 0.70 + 0.15 * np.cos((r[rim] - 310) / 20 * np.pi / 2)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    # lighting: a gradient and a global gain, then sensor noise
    g = rng.uniform(-0.12, 0.12)
    d = rng.uniform(0, 2 * np.pi)
    img *= rng.uniform(0.9, 1.1) * (1 + g * ((xx - SIZE / 2) * np.cos(d) + (yy - SIZE / 2) * np.sin(d)) / SIZE)
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    return img, {"cy": cy, "cx": cx, "turn": turn, "r": r, "a": a, "rib_index": rib_index, "ribs": on_rib}


def _soft_blob(h: int, w: int, cy: float, cx: float, ry: float, rx: float, rng) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
    ang = np.arctan2(v, u)
    wobble = 1 + 0.25 * np.sin(3 * ang + rng.uniform(0, 6.3)) + 0.15 * np.sin(5 * ang + rng.uniform(0, 6.3))
    return ((u / rx) ** 2 + (v / ry) ** 2) < wobble ** 2


def _defect(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "missing_rib":
        k = int(rng.integers(RIBS))
        img, g = _part(rng, skip_rib=k)
        _, full = _part_again(g)
        mask = full & (g["rib_index"] == k)
        return img, mask
    img, g = _part(rng)
    cy, cx, r = g["cy"], g["cx"], g["r"]
    if kind == "broken":
        t = rng.uniform(0, 2 * np.pi)
        size = rng.uniform(50, 130)
        by, bx = cy + 330 * np.sin(t), cx + 330 * np.cos(t)
        mask = _soft_blob(SIZE, SIZE, by, bx, size / 2, size * rng.uniform(0.6, 1.0), rng) & (r < 332)
        img[mask] = 0.08 + rng.normal(0, 0.012, int(mask.sum()))
    elif kind == "contamination":
        size = rng.uniform(40, 140)
        rad, t = rng.uniform(0, 270), rng.uniform(0, 2 * np.pi)
        py, px = cy + rad * np.sin(t), cx + rad * np.cos(t)
        mask = _soft_blob(SIZE, SIZE, py, px, size / 2, size * rng.uniform(0.5, 1.0) / 2, rng)
        src = FOREIGN[int(rng.integers(len(FOREIGN)))]
        y0 = int(rng.integers(0, src.shape[0] - 150))
        x0 = int(rng.integers(0, src.shape[1] - 150))
        tex = np.zeros_like(img)
        y1, x1 = int(py) - 75, int(px) - 75
        patch = src[y0:y0 + 150, x0:x0 + 150]
        ys, xs = slice(max(y1, 0), min(y1 + 150, SIZE)), slice(max(x1, 0), min(x1 + 150, SIZE))
        tex[ys, xs] = patch[ys.start - y1:ys.stop - y1, xs.start - x1:xs.stop - x1]
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
        img = img * (1 - alpha) + (0.15 + 0.7 * tex) * alpha
    else:  # crack
        rad, t = rng.uniform(40, 300), rng.uniform(0, 2 * np.pi)
        y, x = cy + rad * np.sin(t), cx + rad * np.cos(t)
        heading, length = rng.uniform(0, 2 * np.pi), rng.uniform(80, 240)
        pts = []
        for _ in range(int(length / 8)):
            pts.append((x, y))
            heading += rng.normal(0, 0.15)
            x, y = x + 8 * np.cos(heading), y + 8 * np.sin(heading)
        line = np.zeros((SIZE, SIZE), np.uint8)
        cv2.polylines(line, [np.round(np.array(pts)).astype(np.int32)], False, 1, int(rng.integers(1, 3)))
        mask = (line > 0) & (r < 330)
        img[mask] *= rng.uniform(0.35, 0.6)
    return img, mask


def _part_again(g: dict) -> tuple[None, np.ndarray]:
    """The rib pixels the part would have had without the skipped rib (its mask)."""
    r, a = g["r"], g["a"]
    ribs = (r >= 240) & (r < 290)
    phase = (a % (2 * np.pi / RIBS)) / (2 * np.pi / RIBS)
    return None, cv2.dilate((ribs & (np.abs(phase - 0.5) < 0.18)).astype(np.uint8), np.ones((3, 3))) > 0


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))


def stage(out: Path, train: int = 200, good: int = 60, per_type: int = 30, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(train):
        _save(out / "train" / "good" / f"{i:03d}.png", _part(rng)[0])
    for i in range(good):
        _save(out / "test" / "good" / f"{i:03d}.png", _part(rng)[0])
    for kind in TYPES:
        for i in range(per_type):
            img, mask = _defect(kind, rng)
            _save(out / "test" / kind / f"{i:03d}.png", img)
            _save(out / "ground_truth" / kind / f"{i:03d}_mask.png", mask.astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    stage(a.out, seed=a.seed)


if __name__ == "__main__":
    main()
