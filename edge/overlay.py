"""The one picture of an inspected frame, used by the NG archive, the live view and edge-eval's
report: the frame in grey, the anomaly map as a heat overlay where it is high, defect regions
boxed in red, ground truth (when there is one) outlined in green."""

from __future__ import annotations

import cv2
import numpy as np

# heat opacity by level: none below a quarter of the top, rising to 0.6 (x 255)
_ALPHA = np.round(np.clip((np.arange(256) / 255 - 0.25) * 1.2, 0, 0.6) * 255).astype(np.uint8)


def anomaly_map(src: np.ndarray, rec: np.ndarray, probability: bool) -> np.ndarray:
    """What the heat shows: the model's defect probability, or the residual |src - rec|."""
    return rec if probability else np.abs(src - rec)


def overlay(src: np.ndarray, heat: np.ndarray, regions: list[dict] = (), frame_hw=None, *, probability: bool = False,
            width: int | None = None, truth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frame as 8-bit grey, BGR picture), both `width` wide at most (model-space size otherwise).
    `heat` and `truth` may be at another size than `src` (the frame's, where the model worked at
    another scale). `regions` are in frame pixels (frame_hw; None = model space); a probability map is shown on
    its own 0..1 scale, a residual relative to its 99.9th percentile."""
    h, w = src.shape
    scale = width / w if width and w > width else 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale != 1.0:  # shrink first: everything below then costs the picture's size, not the frame's
        src = cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)
    if heat.shape != (size[1], size[0]):  # also a map kept at the frame's size (edge-eval's, of a resized model)
        heat = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    lo, hi = np.percentile(src[::4, ::4], (0.5, 99.5))  # a sample is plenty for a display range
    gain = 255.0 / max(float(hi - lo), 1e-6)
    grey = cv2.convertScaleAbs(src, alpha=gain, beta=-lo * gain)
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    top = 1.0 if probability else float(np.percentile(heat[::4, ::4], 99.9))
    if top > 1e-6:  # all in 8 bits: half the cost of float weights, the same picture within 2 levels
        level = cv2.convertScaleAbs(heat, alpha=255.0 / top)  # 0..255, saturating at the top
        colour = cv2.applyColorMap(level, cv2.COLORMAP_JET)
        alpha = cv2.cvtColor(cv2.LUT(level, _ALPHA), cv2.COLOR_GRAY2BGR)
        picture = cv2.add(cv2.multiply(colour, alpha, scale=1 / 255),
                          cv2.multiply(picture, cv2.bitwise_not(alpha), scale=1 / 255))
    if truth is not None and truth.any():
        t = truth.astype(np.uint8)
        if t.shape != (size[1], size[0]):
            t = cv2.resize(t, size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, (0, 255, 0), 1)
    fh, fw = frame_hw if frame_hw is not None else (h, w)
    fy, fx = size[1] / fh, size[0] / fw
    for r in regions:
        x0, y0 = int(r["x"] * fx), int(r["y"] * fy)
        x1, y1 = int((r["x"] + r["w"]) * fx), int((r["y"] + r["h"]) * fy)
        cv2.rectangle(picture, (x0, y0), (max(x0 + 1, x1), max(y0 + 1, y1)), (0, 0, 255), 2 if size[0] >= 320 else 1)
    return grey, picture
