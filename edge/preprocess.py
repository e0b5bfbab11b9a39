"""Frame -> model input, and frame-sized model output back from tiles.

One implementation used by the station, and later by calibration and evaluation, so a model sees
the same numbers everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from .buffers import BufferPool, Lease
from .recipe import Preprocess


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile`, overlapping by at least `overlap`;
    the last tile is aligned to the end so no tile runs past the frame."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def bit_scale(bits: int, model_bits: int) -> float:
    """Factor that maps values of `bits` significant bits onto the model's bit depth."""
    return 1.0 if bits == model_bits else ((1 << model_bits) - 1) / ((1 << bits) - 1)


class Preprocessor:
    """Owns the buffers for one frame shape; reallocates only when the shape changes."""

    # stitched outputs that can be leased at once: being written, queued, handed to the queue,
    # being analysed. More leases only wait (see edge.buffers), so this is a speed setting.
    LEASES = 4

    def __init__(self, p: Preprocess, model_hw: tuple[int, int], channels: int = 1):
        self.p = p
        self.model_h, self.model_w = model_hw
        self.channels = channels
        self._key = None

    def to_model_space(self, image: np.ndarray, bits: int | None = None) -> np.ndarray:
        """(H, W[, C]) uint8/uint16 -> float32 (H', W') or (C, H', W') after colour, resize, normalise.
        `bits`: significant bits of the pixel values (a 12-bit camera's uint16 frame: 12); None
        takes the dtype's (8 or 16). Values are rescaled to the recipe's bit depth, so a 16-bit
        PNG of a good part reads as the same part, not as a frame 257 times too bright."""
        p = self.p
        if image.ndim == 3 and (p.grayscale or self.channels == 1):
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if p.size is not None and image.shape[:2] != tuple(p.size):
            image = cv2.resize(image, (p.size[1], p.size[0]), interpolation=cv2.INTER_AREA)
        depth = bits or (8 * image.dtype.itemsize if image.dtype.kind in "ui" else p.bit_depth)
        a = p.scale / p.std * bit_scale(depth, p.bit_depth)
        b = -p.mean / p.std
        x = np.multiply(image, np.float32(a), dtype=np.float32)  # convert and scale in one pass
        if b != 0.0:
            x += np.float32(b)
        if x.ndim == 3:
            x = np.ascontiguousarray(x.transpose(2, 0, 1))
        return x

    def _layout(self, h: int, w: int):
        if self._key != (h, w):
            self.ys = tile_origins(h, self.model_h, self.p.tile_overlap)
            self.xs = tile_origins(w, self.model_w, self.p.tile_overlap)
            self.pad_h, self.pad_w = max(0, self.model_h - h), max(0, self.model_w - w)
            n = len(self.ys) * len(self.xs)
            self.batch = np.zeros((n, self.channels, self.model_h, self.model_w), np.float32)
            self.pool = BufferPool((h, w), np.float32, self.LEASES)
            self.weight = None
            if n > 1 and self.p.tile_overlap:
                weight = np.zeros((h, w), np.float32)
                for y in self.ys:
                    for x in self.xs:
                        weight[y:y + self.model_h, x:x + self.model_w] += 1
                self.weight = 1.0 / weight
            self._key = (h, w)

    def tiles(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model-space frame -> (n, C, h, w) batch of tiles (frames smaller than the model are
        reflect-padded). `out`, when given, receives them instead of the own buffer: the GPU
        runner's pinned input, so the frame reaches the upload buffer in one pass."""
        planes = x if x.ndim == 3 else x[None]
        h, w = planes.shape[1:]
        self._layout(h, w)
        batch = self.batch if out is None else out
        if self.pad_h or self.pad_w:
            planes = np.pad(planes, ((0, 0), (0, self.pad_h), (0, self.pad_w)), mode="reflect")
        i = 0
        for y in self.ys:
            for xo in self.xs:
                batch[i] = planes[:, y:y + self.model_h, xo:xo + self.model_w]
                i += 1
        return batch

    def tile_count(self, h: int, w: int) -> int:
        self._layout(h, w)
        return len(self.ys) * len(self.xs)

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.pool.shape

    def stitch(self, outputs: np.ndarray) -> np.ndarray:
        """(n, C', h, w) outputs -> a new (H, W) float32 map of the first output channel, owned by
        the caller (evaluation, benchmarks: one frame at a time)."""
        out = np.empty(self.pool.shape, np.float32)
        self._stitch(outputs, out)
        return out

    def stitch_leased(self, outputs: np.ndarray, timeout: float | None = None) -> Lease:
        """The same into a buffer of the pool (no allocation per frame); release() the lease when
        done with it. Waits while every buffer is leased."""
        lease = self.pool.acquire(timeout)
        self._stitch(outputs, lease.array)
        return lease

    def _stitch(self, outputs: np.ndarray, out: np.ndarray):
        h, w = out.shape
        if len(outputs) == 1:  # copied: a runner's output is only valid until its next call
            np.copyto(out, outputs[0, 0, :h, :w])
            return
        if self.weight is not None:
            out[:] = 0
        i = 0
        for y in self.ys:
            for xo in self.xs:
                tile = outputs[i, 0, :min(self.model_h, h - y), :min(self.model_w, w - xo)]
                if self.weight is not None:
                    out[y:y + tile.shape[0], xo:xo + tile.shape[1]] += tile
                else:
                    out[y:y + tile.shape[0], xo:xo + tile.shape[1]] = tile
                i += 1
        if self.weight is not None:
            out *= self.weight
