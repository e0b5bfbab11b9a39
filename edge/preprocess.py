"""Frame -> model input, and frame-sized model output back from tiles.

One implementation used by the station, and later by calibration and evaluation, so a model sees
the same numbers everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from .buffers import BufferPool, Lease
from .errors import InputError
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


def ramp_weights(starts: list[int], tile: int) -> list[np.ndarray]:
    """Each tile's weight along one axis for blend "ramp": 1 inside, rising linearly across its
    overlap with the previous tile and falling across its overlap with the next, so two tiles
    cross-fade where they overlap and a tile's border, which saw the least of its surroundings,
    counts least. Never 0: a pixel is always covered."""
    out = []
    for i, s in enumerate(starts):
        w = np.ones(tile, np.float32)
        if i > 0 and (ov := starts[i - 1] + tile - s) > 0:
            w[:ov] = np.minimum(w[:ov], (np.arange(ov) + 0.5) / ov)
        if i + 1 < len(starts) and (ov := s + tile - starts[i + 1]) > 0:
            w[tile - ov:] = np.minimum(w[tile - ov:], (ov - 0.5 - np.arange(ov)) / ov)
        out.append(w)
    return out


def axis_shares(starts: list[int], tile: int, blend: str) -> list[np.ndarray]:
    """Each tile's share along one axis, the shares at every position summing to 1. A tile's 2-D
    share is the outer product of its row's and its column's: the sum over all tiles of those
    products is the product of the two axes' sums, 1."""
    weights = ramp_weights(starts, tile) if blend == "ramp" else [np.ones(tile, np.float32) for _ in starts]
    total = np.zeros(starts[-1] + tile, np.float32)
    for s, w in zip(starts, weights):
        total[s:s + tile] += w
    return [w / total[s:s + tile] for s, w in zip(starts, weights)]


def scaled_hw(h: int, w: int, factor: float) -> tuple[int, int]:
    """A frame's shape resized by `factor`: its sides times the factor, rounded, at least 1."""
    return max(1, round(h * factor)), max(1, round(w * factor))


def scaled_frame(x: np.ndarray, factor: float, out: np.ndarray | None = None) -> np.ndarray:
    """A model-space frame ((H, W) or (C, H, W) float32) resized by `factor` (area averaging): the
    working scale's frame, and the coarse view of a two-scale recipe, the same for training crops
    and the station. `out`: a (C, h, w) buffer of the resized shape to write into (the station's
    coarse frame, reused per frame shape)."""
    planes = x if x.ndim == 3 else x[None]
    ch, cw = scaled_hw(planes.shape[1], planes.shape[2], factor)
    if out is None:
        out = np.empty((len(planes), ch, cw), np.float32)
    for c, o in zip(planes, out):
        cv2.resize(c, (cw, ch), dst=o, interpolation=cv2.INTER_AREA)
    return out if x.ndim == 3 else out[0]


def fusion_weights(coarse_weight: float) -> tuple[float, float]:
    """(native, coarse) map multipliers for the recipe's coarse_weight w: their ratio is w and
    the larger is 1, so the fused maximum of two probability maps stays a probability."""
    return (1.0, coarse_weight) if coarse_weight <= 1 else (1.0 / coarse_weight, 1.0)


class _Grid:
    """How one image shape meets the model: the tiles' side and origins (one tile: a whole-frame
    model, or an image no larger than a fixed input), padding, and where tiles overlap each
    tile's share of the stitched map."""

    def __init__(self, h: int, w: int, model_h: int, model_w: int, overlap: int, multiple: int, blend: str):
        self.hw = (h, w)
        if not model_h:  # whole-frame model: the frame itself, padded up to the sides the network takes
            model_h, model_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        self.tile = (model_h, model_w)
        self.ys, self.xs = tile_origins(h, model_h, overlap), tile_origins(w, model_w, overlap)
        self.pad_h, self.pad_w = max(0, model_h - h), max(0, model_w - w)
        # the tiles in batch order (rows of tiles, left to right): (y, x, row index, column index)
        self.cells = [(y, x, r, c) for r, y in enumerate(self.ys) for c, x in enumerate(self.xs)]
        self.shares: tuple[list[np.ndarray], list[np.ndarray]] | None = None  # per tile row, per tile column
        if len(self.cells) > 1 and overlap:
            self.shares = axis_shares(self.ys, model_h, blend), axis_shares(self.xs, model_w, blend)
            # one tile's weighted map while stitching; the layout's thread (the one that cuts and
            # stitches, like the batch buffer) is its only user
            self.part = np.empty((min(model_h, h), min(model_w, w)), np.float32)

    def cut(self, planes: np.ndarray, batch: np.ndarray):
        """(C, h, w) planes of this grid's shape -> its tiles, into batch[:len(cells)]."""
        if self.pad_h or self.pad_w:
            planes = np.pad(planes, ((0, 0), (0, self.pad_h), (0, self.pad_w)), mode="reflect")
        th, tw = self.tile
        for i, (y, xo, _, _) in enumerate(self.cells):
            batch[i] = planes[:, y:y + th, xo:xo + tw]

    def stitch(self, outputs: np.ndarray, out: np.ndarray):
        """This grid's (n, C', h, w) outputs -> `out` (its shape): the first output channel."""
        h, w = out.shape
        if len(outputs) == 1:  # copied: a runner's output is only valid until its next call
            np.copyto(out, outputs[0, 0, :h, :w])
            return
        th, tw = self.tile
        if self.shares is not None:
            out[:] = 0
        for i, (y, xo, r, c) in enumerate(self.cells):
            tile = outputs[i, 0, :min(th, h - y), :min(tw, w - xo)]
            region = out[y:y + tile.shape[0], xo:xo + tile.shape[1]]
            if self.shares is not None:
                a, b = tile.shape
                np.multiply(tile, self.shares[0][r][:a, None], out=self.part)
                self.part *= self.shares[1][c][None, :b]
                region += self.part
            else:
                region[:] = tile


class _Layout:
    """How one frame shape meets the model: its grid of tiles and, with a coarse scale, the grid
    of the frame resized (both in one batch, native tiles first), the batch buffer, the output
    pool and the coarse map's buffers."""

    def __init__(self, h: int, w: int, model_h: int, model_w: int, p: Preprocess, channels: int, leases: int):
        """channels: the model's input channels (the image's, then the scale plane with one)."""
        self.hw = (h, w)
        image_channels = channels - 1 if p.scale_plane else channels
        def grid(gh: int, gw: int) -> _Grid:
            return _Grid(gh, gw, model_h, model_w, p.tile_overlap, p.input_multiple, p.tile_blend)
        self.native = grid(h, w)
        self.coarse: _Grid | None = None
        n = len(self.native.cells)
        if p.coarse_scale is not None:
            self.coarse_scale = p.coarse_scale
            self.coarse = grid(*scaled_hw(h, w, p.coarse_scale))
            n += len(self.coarse.cells)
            self.coarse_frame = np.empty((image_channels, *self.coarse.hw), np.float32)  # the cutting thread's
            self.coarse_map = np.empty(self.coarse.hw, np.float32)  # the stitching thread's, like `part`
            self.upsampled = np.empty((h, w), np.float32)
        self.batch = np.zeros((n, channels, *self.native.tile), np.float32)
        if p.scale_plane:
            self.plane(self.batch)
        self.pool = BufferPool((h, w), np.float32, leases)

    def plane(self, batch: np.ndarray):
        """Each tile's scale plane, the batch's last channel: 0 on the frame's tiles, 1 on the coarse ones."""
        n = len(self.native.cells)
        batch[:n, -1] = 0.0
        batch[n:, -1] = 1.0


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
        if self.whole_frame and p.coarse_scale is not None:  # two grids of two tile sizes are no one batch
            raise InputError("<recipe>", "preprocess.coarse_scale",
                             "expected null for a whole-frame model (dynamic height and width): the coarse scale's "
                             "tiles go in the same call as the native ones, so the model must take fixed tiles")
        self.channels = channels  # the model's input channels: the image's, and the scale plane's with one
        self.image_channels = channels - 1 if p.scale_plane else channels
        self._layouts: dict[tuple[int, int], _Layout] = {}
        self._last: _Layout | None = None

    def to_model_space(self, image: np.ndarray, bits: int | None = None) -> np.ndarray:
        """(H, W[, C]) uint8/uint16 -> float32 (H', W') or (C, H', W') after colour, resize, normalise
        and the working scale (model_hw).
        `bits`: significant bits of the pixel values (a 12-bit camera's uint16 frame: 12); None
        takes the dtype's (8 or 16). Values are rescaled to the recipe's bit depth, so a 16-bit
        PNG of a good part reads as the same part, not as a frame 257 times too bright."""
        p = self.p
        if image.ndim == 3 and (p.grayscale or self.image_channels == 1):
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
        if p.working_scale != 1.0:  # on the model-space frame, as training resizes its images
            x = scaled_frame(x, p.working_scale)
        return x

    def model_hw(self, h: int, w: int) -> tuple[int, int]:
        """The model-space frame's shape for an h x w frame: its fixed size, or its own shape at the
        working scale (what the tiles are cut from)."""
        if self.p.size is not None:
            return self.p.size
        return scaled_hw(h, w, self.p.working_scale) if self.p.working_scale != 1.0 else (h, w)

    def layout(self, h: int, w: int) -> _Layout:
        lay = self._layouts.get((h, w))
        if lay is None:
            if len(self._layouts) >= self.SHAPES:  # the oldest goes; a lease on its pool stays valid
                self._layouts.pop(next(iter(self._layouts)))
            lay = self._layouts[(h, w)] = _Layout(h, w, self.model_h, self.model_w, self.p, self.channels,
                                                  self.LEASES)
        self._last = lay
        return lay

    def tiles(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model-space frame -> (n, C, h, w) batch of tiles (frames smaller than the model are
        reflect-padded): the frame's tiles, then, where the recipe has a coarse scale, those of
        the frame resized. `out`, when given, receives them instead of the own buffer: the GPU
        runner's pinned input, so the frame reaches the upload buffer in one pass."""
        planes = x if x.ndim == 3 else x[None]
        lay = self.layout(*planes.shape[1:])
        batch = lay.batch if out is None else out
        n = len(lay.native.cells)
        image = batch[:, :self.image_channels]
        lay.native.cut(planes, image)
        if lay.coarse is not None:
            lay.coarse.cut(scaled_frame(planes, lay.coarse_scale, lay.coarse_frame), image[n:])
        if self.p.scale_plane and out is not None:  # the own batch holds its planes since the layout was made
            lay.plane(out)
        return batch

    def tile_count(self, h: int, w: int) -> int:
        """The tiles of one h x w frame: one model call's batch."""
        return len(self.layout(h, w).batch)

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

    def scale_maps(self, outputs: np.ndarray, frame_hw: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Each scale's map of one frame before fusion, at the frame's size, new arrays: the
        native one, then the coarse one where the recipe has a coarse scale (what edge-train
        calibrates the coarse weight on)."""
        lay = self._layouts[frame_hw] if frame_hw is not None else self._cut()
        native = np.empty(lay.hw, np.float32)
        lay.native.stitch(outputs[:len(lay.native.cells)], native)
        return [native] if lay.coarse is None else [native, self._coarse_map(outputs, lay).copy()]

    @staticmethod
    def _coarse_map(outputs: np.ndarray, lay: _Layout) -> np.ndarray:
        """The coarse grid's map brought back to the frame's size, in the layout's buffer."""
        assert lay.coarse is not None
        lay.coarse.stitch(outputs[len(lay.native.cells):], lay.coarse_map)
        cv2.resize(lay.coarse_map, lay.hw[::-1], dst=lay.upsampled, interpolation=cv2.INTER_LINEAR)
        return lay.upsampled

    def _stitch(self, outputs: np.ndarray, out: np.ndarray, lay: _Layout):
        lay.native.stitch(outputs[:len(lay.native.cells)], out)
        if lay.coarse is None:
            return
        # two scales: the coarse map brought to the frame's size, each weighted, the larger kept
        coarse = self._coarse_map(outputs, lay)
        a, b = fusion_weights(self.p.coarse_weight)
        if a != 1.0:
            out *= np.float32(a)
        if b != 1.0:
            coarse *= np.float32(b)
        np.maximum(out, coarse, out=out)
