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


class _Layout:
    """How one frame shape meets the model: the tiles' side and origins (one tile: a whole-frame
    model, or a frame no larger than a fixed input), padding, the batch buffer, the output pool."""

    def __init__(self, h: int, w: int, model_h: int, model_w: int, overlap: int, channels: int, leases: int,
                 multiple: int = 1):
        self.hw = (h, w)
        if not model_h:  # whole-frame model: the frame itself, padded up to the sides the network takes
            model_h, model_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        self.tile = (model_h, model_w)
        self.ys, self.xs = tile_origins(h, model_h, overlap), tile_origins(w, model_w, overlap)
        self.pad_h, self.pad_w = max(0, model_h - h), max(0, model_w - w)
        n = len(self.ys) * len(self.xs)
        self.batch = np.zeros((n, channels, model_h, model_w), np.float32)
        self.pool = BufferPool((h, w), np.float32, leases)
        self.weight = None
        if n > 1 and overlap:
            weight = np.zeros((h, w), np.float32)
            for y in self.ys:
                for x in self.xs:
                    weight[y:y + model_h, x:x + model_w] += 1
            self.weight = 1.0 / weight


class Preprocessor:
    """Owns the buffers of the frame shapes it has seen lately. One layout per shape, not one
    shared: with overlapped inference frame n+1 is cut before frame n is stitched, and frames of
    another size must not be stitched with the newer frame's layout."""

    # stitched outputs that can be leased at once: being written, queued, handed to the queue,
    # being analysed. More leases only wait (see edge.buffers), so this is a speed setting.
    LEASES = 4
    SHAPES = 4  # layouts kept (a station sees one or two frame sizes; a replay folder may mix more)

    def __init__(self, p: Preprocess, model_hw: tuple[int, int], channels: int = 1):
        """model_hw: the model's fixed input (frames are cut into tiles of it), or (0, 0) for a
        whole-frame model (dynamic height and width: each frame is one call, padded up to
        multiples of the recipe's input_multiple)."""
        self.p = p
        self.model_h, self.model_w = model_hw
        self.whole_frame = not self.model_h  # the runners give H and W both fixed or both 0
        self.channels = channels
        self._layouts: dict[tuple[int, int], _Layout] = {}
        self._last: _Layout | None = None

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

    def layout(self, h: int, w: int) -> _Layout:
        lay = self._layouts.get((h, w))
        if lay is None:
            if len(self._layouts) >= self.SHAPES:  # the oldest goes; a lease on its pool stays valid
                self._layouts.pop(next(iter(self._layouts)))
            lay = self._layouts[(h, w)] = _Layout(h, w, self.model_h, self.model_w, self.p.tile_overlap,
                                                  self.channels, self.LEASES, self.p.input_multiple)
        self._last = lay
        return lay

    def tiles(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model-space frame -> (n, C, h, w) batch of tiles (frames smaller than the model are
        reflect-padded). `out`, when given, receives them instead of the own buffer: the GPU
        runner's pinned input, so the frame reaches the upload buffer in one pass."""
        planes = x if x.ndim == 3 else x[None]
        lay = self.layout(*planes.shape[1:])
        batch = lay.batch if out is None else out
        if lay.pad_h or lay.pad_w:
            planes = np.pad(planes, ((0, 0), (0, lay.pad_h), (0, lay.pad_w)), mode="reflect")
        th, tw = lay.tile
        i = 0
        for y in lay.ys:
            for xo in lay.xs:
                batch[i] = planes[:, y:y + th, xo:xo + tw]
                i += 1
        return batch

    def tile_count(self, h: int, w: int) -> int:
        lay = self.layout(h, w)
        return len(lay.ys) * len(lay.xs)

    def stitch(self, outputs: np.ndarray, frame_hw: tuple[int, int] | None = None) -> np.ndarray:
        """(n, C', h, w) outputs -> a new (H, W) float32 map of the first output channel, owned by
        the caller (evaluation, benchmarks: one frame at a time). `frame_hw`: the frame the tiles
        were cut from (default: the last one cut)."""
        lay = self._layouts[frame_hw] if frame_hw is not None else self._cut()
        out = np.empty(lay.hw, np.float32)
        self._stitch(outputs, out, lay)
        return out

    def stitch_leased(self, outputs: np.ndarray, frame_hw: tuple[int, int] | None = None,
                      timeout: float | None = None) -> Lease:
        """The same into a buffer of that shape's pool (no allocation per frame); release() the
        lease when done with it. Waits while every buffer is leased."""
        lay = self.layout(*frame_hw) if frame_hw is not None else self._cut()
        lease = lay.pool.acquire(timeout)
        self._stitch(outputs, lease.array, lay)
        return lease

    def _cut(self) -> _Layout:
        if self._last is None:
            raise RuntimeError("stitch before any frame was cut into tiles")
        return self._last

    def _stitch(self, outputs: np.ndarray, out: np.ndarray, lay: _Layout):
        h, w = out.shape
        if len(outputs) == 1:  # copied: a runner's output is only valid until its next call
            np.copyto(out, outputs[0, 0, :h, :w])
            return
        if lay.weight is not None:
            out[:] = 0
        th, tw = lay.tile
        i = 0
        for y in lay.ys:
            for xo in lay.xs:
                tile = outputs[i, 0, :min(th, h - y), :min(tw, w - xo)]
                if lay.weight is not None:
                    out[y:y + tile.shape[0], xo:xo + tile.shape[1]] += tile
                else:
                    out[y:y + tile.shape[0], xo:xo + tile.shape[1]] = tile
                i += 1
        if lay.weight is not None:
            out *= lay.weight
