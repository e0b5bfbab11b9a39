"""Frame -> verdict: the reusable core of inspection, without threads. The station's Pipeline
runs it on its threads; evaluation (edge-eval), build-engine's accuracy gate and the benchmarks
call it one frame at a time, so all of them judge a part exactly as the station does."""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from .backends.base import Runner
from .buffers import Lease
from .detect import Detection, make_detector
from .preprocess import Preprocessor
from .recipe import Recipe
from .telemetry import Stage, Timings
from .verdict import Verdict


class Analysis(NamedTuple):
    verdict: Verdict
    score: float
    regions: list          # region dicts, in frame pixels
    latency: Timings       # the frame's stage timings, detect and decide added by analyse
    detection: Detection   # its mask belongs to the detector until the next frame: copy to keep


def run_tiles(runner: Runner, batch: np.ndarray) -> np.ndarray:
    """Run a batch of tiles, in chunks when the model's batch size is fixed."""
    fixed = runner.input_shape[0]
    if not fixed or fixed == len(batch):
        return runner.infer(batch)
    outs = []
    for i in range(0, len(batch), fixed):
        chunk = batch[i:i + fixed]
        if len(chunk) < fixed:  # pad the last chunk to the fixed batch size
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), axis=0)])
        outs.append(runner.infer(chunk)[:min(fixed, len(batch) - i)].copy())
    return np.concatenate(outs)


class Inspector:
    """Frame -> verdict record. Also used by benchmarks and tests without threads."""

    def __init__(self, runner: Runner, recipe: Recipe, camera: str, station: str):
        self.runner, self.recipe, self.camera, self.station = runner, recipe, camera, station
        _, channels, h, w = runner.input_shape
        self.pre = Preprocessor(recipe.preprocess, (h, w), channels)
        self.set_recipe(recipe)

    def set_recipe(self, recipe: Recipe):
        """Detection and decision from `recipe` (its preprocessing must match the running one)."""
        gpu_detector = None
        if self.runner.device_outputs:
            from .detect.gpu_dct import make_gpu_detector
            gpu_detector = make_gpu_detector(recipe.detect)
        # each attribute is replaced whole, never cleared first: the inference thread reads
        # gpu_detector once per frame and gets the old detector or the new one, never None
        self.recipe = recipe
        self.detector = make_detector(recipe.detect)
        self.decision = recipe.decision
        self.gpu_detector = gpu_detector

    def warm_up(self, shape: tuple[int, ...]):
        """Inference and detection on a blank frame, then detection of a synthetic defect, so
        every kernel is compiled and every buffer sized before the first real part (a cold Numba
        cache otherwise costs the first NG frame about a second). Only speed depends on it."""
        blank = np.full(shape, 128, np.uint8)
        x = self.pre.to_model_space(blank)
        self.inspect(x, (shape[0], shape[1]))
        src = (x if x.ndim == 2 else x[0]).copy()
        rec = src.copy()
        h, w = src.shape
        src[h // 2 - 8:h // 2 + 8, w // 2 - 8:w // 2 + 8] += 1.0  # a bright square the "model" removed
        self.analyse(src, rec, (h, w))
        if self.gpu_detector is not None:  # compile the CUDA kernels now, not on the first part
            from numba import cuda
            self.gpu_detector(cuda.to_device(src), cuda.to_device(rec))
            # and for views of a wider buffer: a frame narrower than the engine input arrives as one
            # (another array layout to numba: compiled again on the first such part otherwise)
            pad = ((0, 0), (0, 16))
            self.gpu_detector(cuda.to_device(np.pad(src, pad))[:, :w], cuda.to_device(np.pad(rec, pad))[:, :w])

    def inspect(self, x: np.ndarray, frame_hw: tuple[int, int]) -> Analysis:
        """Model-space frame -> Analysis, one frame at a time (no threads)."""
        timings = Timings()
        with timings.timed(Stage.INFER):
            rec = self.reconstruct(x)
        return self.analyse(x, rec, frame_hw, timings=timings)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Tiles -> model -> stitched output (H, W), a new array the caller owns."""
        return self.pre.stitch(run_tiles(self.runner, self.pre.tiles(x)))

    def reconstruct_leased(self, x: np.ndarray) -> Lease:
        """The same into a pooled buffer (the pipeline's path): release the lease when analysed."""
        return self.pre.stitch_leased(run_tiles(self.runner, self.pre.tiles(x)))

    def can_submit(self, x: np.ndarray) -> bool:
        """The runner runs frames asynchronously and this frame's tiles are one batch of it."""
        fixed = self.runner.input_shape[0]
        return self.runner.overlaps and fixed in (0, self.pre.tile_count(*x.shape[-2:]))

    def submit(self, x: np.ndarray):
        """Start inference of one frame without waiting (see Pipeline._infer_overlapped); the
        tiles are cut straight into the runner's pinned input buffer."""
        t_submit = time.perf_counter()
        self.pre.tiles(x, out=self.runner.next_input())
        return self.runner.submit(None), tuple(x.shape[-2:]), t_submit  # the frame's shape: the next may differ

    def collect(self, submitted, timings: Timings) -> tuple[Lease, object]:
        """Wait for a submitted frame: (lease on the stitched output, detection or None), its
        stage times added to `timings` (infer from the submit on, the GPU's upload / compute /
        download from its events). With a GPU detector the residual analysis runs here, on the
        device buffers, before the slot can be reused; only the patch grid and, for NG frames, the
        mask come back."""
        handle, frame_hw, t_submit = submitted
        out = self.runner.collect(handle)
        timings.add(Stage.INFER, time.perf_counter() - t_submit)
        for stage, seconds in self.runner.last_timings.items():
            timings.add(stage, seconds)
        det = None
        gpu_detector = self.gpu_detector  # read once: a reload may replace it meanwhile
        if gpu_detector is not None:
            with timings.timed(Stage.DETECT):
                # the frame's own pixels, not the engine's padded input: the CPU path analyses the same
                src_dev, rec_dev = self.runner.device_views(handle, *frame_hw)
                det = gpu_detector(src_dev, rec_dev)
        with timings.timed(Stage.INFER):
            return self.pre.stitch_leased(out, frame_hw), det

    def analyse(self, x: np.ndarray, rec: np.ndarray, frame_hw: tuple[int, int], det=None,
                timings: Timings | None = None) -> Analysis:
        """Detection (unless done on the GPU already: `det`) and decision on a reconstructed frame;
        their times are added to `timings` (a new one when not given), which the Analysis carries."""
        timings = Timings() if timings is None else timings
        t1 = time.perf_counter()
        src = x if x.ndim == 2 else x[0]
        if det is None:
            det = self.detector(src, rec)
        t2 = time.perf_counter()
        d = self.decision
        # NaN compares false with any threshold: unchecked, a broken model would pass every part
        if not (math.isfinite(det.score) and math.isfinite(float(rec.sum()))):
            timings.add(Stage.DETECT, t2 - t1)
            timings.add(Stage.DECIDE, time.perf_counter() - t2)
            return Analysis(Verdict.DROPPED if d.non_finite == "drop" else Verdict.NG, math.nan, [], timings, det)
        fy, fx = frame_hw[0] / src.shape[0], frame_hw[1] / src.shape[1]
        defects = [r for r in (r.scaled(fx, fy) for r in det.regions) if r.area >= d.min_area]
        ng = det.score >= d.score_threshold if d.rule == "score" else bool(defects)
        regions = [r.as_dict() for r in defects[:d.max_regions]]
        timings.add(Stage.DETECT, t2 - t1)
        timings.add(Stage.DECIDE, time.perf_counter() - t2)
        return Analysis(Verdict.NG if ng else Verdict.OK, det.score, regions, timings, det)
