"""The embedded default: a packaged demo model and generated replay frames.

`edge-run` with no --config runs camera cam0 on these, with ONNX Runtime on the CPU, so a
newcomer sees the whole path without a camera, a GPU or a dataset.

demo_model.onnx is a U-Net (seed 000, ~0.5 MB) trained by `python -m train.demo_model` on
pseudo-defects painted on crops of scikit-image's gravel photo, calibrated on held-out crops. The replay frames are other crops of
that photo (generated on first use, so no third-party image is copied into the repository),
three of twelve with a painted defect. They need the `demo` extra (scikit-image).

texture() and paint_defect() also make the synthetic surfaces that tests and benchmarks use.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent
MODEL = HERE / "demo_model.onnx"
MODEL_SIZE = 192  # frames and training crops; ReNet-D runs on 32x32 blocks of it
FRAMES = 12
DEFECT_FRAMES = (3, 7, 10)  # 0-based frame numbers that carry a painted defect
SIZE = 512


def _gravel() -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        from ..errors import InputError
        raise InputError("<embedded default>", None,
                         "the demo frames need scikit-image: pip install 'edge-inspect[demo]'") from None
    return data.gravel()


def training_crops() -> list[np.ndarray]:
    """Crops (and mirror images) from the top 320 rows of the gravel photo: the demo model's good images."""
    s = MODEL_SIZE
    g = _gravel()[:320]
    crops = []
    for x in range(0, g.shape[1] - s + 1, 32):
        for y in range(0, g.shape[0] - s + 1, 32):
            c = g[y:y + s, x:x + s]
            crops += [c, c[:, ::-1].copy()]
    return crops


def gravel_frames(count: int = FRAMES, defect_frames=DEFECT_FRAMES) -> list[np.ndarray]:
    """Replay frames: crops of the photo's bottom 192 rows (never seen in training), some defective."""
    s = MODEL_SIZE
    g = _gravel()[320:]
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        x = int(rng.integers(0, g.shape[1] - s + 1))
        img = g[:s, x:x + s].astype(np.float32) / 255
        if i in defect_frames:
            paint_defect(img, i, 7000 + i)
        frames.append((img * 255 + 0.5).astype(np.uint8))
    return frames


def texture(seed: int, size: int = SIZE) -> np.ndarray:
    """A smooth, mottled surface (like cast or sintered parts) with fine sensor noise, float [0, 1]."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 9)
    base = 0.5 + 0.12 * base / base.std()
    grain = rng.normal(0, 0.008, (size, size)).astype(np.float32)
    return np.clip(base + grain, 0, 1)


def paint_defect(img: np.ndarray, kind: int, seed: int) -> np.ndarray:
    """Paint a dark pit, a scratch or a bright inclusion; returns the image (float [0, 1]) in place."""
    rng = np.random.default_rng(seed)
    h, w = img.shape
    cy, cx = (int(v) for v in rng.integers(64, min(h, w) - 64, size=2))
    mask = np.zeros((h, w), np.uint8)
    if kind % 3 == 0:
        cv2.circle(mask, (cx, cy), 7, 1, -1)
        img[mask > 0] -= 0.35
    elif kind % 3 == 1:
        angle = rng.uniform(0, np.pi)
        dx, dy = int(45 * np.cos(angle)), int(45 * np.sin(angle))
        cv2.line(mask, (cx - dx, cy - dy), (cx + dx, cy + dy), 1, 3)
        img[mask > 0] -= 0.3
    else:
        cv2.ellipse(mask, (cx, cy), (10, 5), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        img[mask > 0] += 0.35
    np.clip(img, 0, 1, out=img)
    return img


def frames_dir() -> Path:
    """The demo replay folder, generated on first use under the user's cache directory."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-inspect" / "demo-frames-v2"
    if len(list(root.glob("*.png"))) != FRAMES:
        root.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(gravel_frames()):
            tag = "defect" if i in DEFECT_FRAMES else "good"
            cv2.imwrite(str(root / f"part_{i:03d}_{tag}.png"), img)
    return root


def default_config_yaml() -> str:
    return f"""\
station: demo
cameras:
  cam0:
    source: file://{frames_dir()}
model:
  path: {MODEL}
"""
