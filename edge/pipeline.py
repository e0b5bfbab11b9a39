"""source -> preprocess -> infer -> detect -> decide -> outputs, with every frame accounted for.

Two threads: acquisition (grab + preprocess into model space) feeds a bounded queue; the
inference thread tiles, runs the model, detects, decides and emits. ONNX Runtime, OpenCV and the
Numba kernels release the GIL, so preprocessing of frame n+1 overlaps inference of frame n.
A live camera whose queue is full drops the new frame (counted, reason queue_full) rather than
stall the camera; replay waits instead.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .backends.base import Runner
from .detect import make_detector
from .preprocess import Preprocessor
from .recipe import Recipe
from .sources import EndOfStream, Frame, Source
from .telemetry import Telemetry

_END = object()


@dataclass
class Item:
    frame: Frame
    x: np.ndarray | None  # model-space frame
    preprocess_s: float
    t_queued: float


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
        self.detector = make_detector(recipe.detect)
        self.min_area = recipe.decision.min_area
        self.max_regions = recipe.decision.max_regions

    def warm_up(self, shape: tuple[int, ...]):
        """One inference and detection on a blank frame: compiles kernels, sizes buffers."""
        blank = np.full(shape, 128, np.uint8)
        self.inspect(self.pre.to_model_space(blank), blank.shape[:2])

    def inspect(self, x: np.ndarray, frame_hw: tuple[int, int]):
        """Model-space frame -> (verdict, score, regions as dicts, {stage: seconds})."""
        t0 = time.perf_counter()
        rec = self.pre.stitch(run_tiles(self.runner, self.pre.tiles(x)))
        t1 = time.perf_counter()
        src = x if x.ndim == 2 else x[0]
        det = self.detector(src, rec)
        t2 = time.perf_counter()
        fy, fx = frame_hw[0] / src.shape[0], frame_hw[1] / src.shape[1]
        defects = [r.scaled(fx, fy) for r in det.regions if r.area >= self.min_area]
        verdict = "NG" if defects else "OK"
        regions = [r.as_dict() for r in defects[:self.max_regions]]
        t3 = time.perf_counter()
        return verdict, det.score, regions, {"infer": t1 - t0, "detect": t2 - t1, "decide": t3 - t2}


class Pipeline:
    def __init__(self, source: Source, inspector: Inspector, outputs: list, telemetry: Telemetry,
                 queue_size: int = 4, drop_when_full: bool | None = None, max_frames: int = 0,
                 progress_s: float = 0.0, first: Frame | None = None, log=sys.stderr):
        self.source, self.inspector, self.outputs, self.t = source, inspector, outputs, telemetry
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.drop_when_full = source.live if drop_when_full is None else drop_when_full
        self.max_frames, self.progress_s, self.log = max_frames, progress_s, log
        self.first = first
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    # -- records --------------------------------------------------------------------------
    def _base(self, frame: Frame) -> dict:
        return {"station": self.inspector.station, "camera": self.inspector.camera, "frame_id": frame.frame_id,
                "timestamp": frame.timestamp, "source": frame.name,
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}

    def _emit(self, record: dict):
        for out in self.outputs:
            out.emit(record)

    def _drop(self, frame: Frame, reason: str, detail: str = ""):
        self.t.drop(reason)
        rec = self._base(frame)
        rec.update(verdict="DROPPED", reason=reason)
        if detail:
            rec["detail"] = detail
        self._emit(rec)

    # -- acquisition thread ----------------------------------------------------------------
    def _acquire(self):
        grabbed = 0
        try:
            if self.first is not None:  # the frame grabbed for warm-up is inspected like any other
                grabbed += 1
                self._enqueue(self.first)
            while not self.stop_event.is_set() and (not self.max_frames or grabbed < self.max_frames):
                try:
                    frame = self.source.grab(0.5)
                except EndOfStream:
                    break
                if frame is None:
                    self.t.timeout()
                    continue
                grabbed += 1
                self._enqueue(frame)
        except BaseException as e:  # a camera or source failure ends the run; frames queued still get verdicts
            self.error = e
        finally:
            self.queue.put(_END)

    def _enqueue(self, frame: Frame):
        self.t.grabbed_one()
        if frame.meta.get("camera_gap"):
            self.t.drop("camera_gap", frame.meta["camera_gap"])
        t0 = time.perf_counter()
        x = None
        if frame.error is None:
            try:
                x = self.inspector.pre.to_model_space(frame.image)
            except Exception as e:  # a frame the preprocessing cannot take (odd channels or depth)
                frame.error = f"preprocess failed: {type(e).__name__}: {e}"
        item = Item(frame, x, time.perf_counter() - t0, time.perf_counter())
        if not self.drop_when_full:
            self.queue.put(item)
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self._drop(frame, "queue_full")

    # -- inference (calling) thread ----------------------------------------------------------
    def run(self) -> Telemetry:
        if self.first is not None:
            self.first.t_grab = time.perf_counter()  # its wait through the warm-up is not station latency
        self.t.started = time.perf_counter()
        acq = threading.Thread(target=self._acquire, name="acquire", daemon=True)
        acq.start()
        next_progress = time.perf_counter() + self.progress_s if self.progress_s else None
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    break
                self._process(item)
                if next_progress is not None and time.perf_counter() >= next_progress:
                    print(self.t.progress_line(), file=self.log, flush=True)
                    next_progress += self.progress_s
        finally:  # on an inference failure, let the acquisition thread finish instead of blocking
            self.stop_event.set()
            while acq.is_alive():
                try:
                    self.queue.get(timeout=0.1)
                except queue.Empty:
                    pass
            acq.join()
        return self.t

    def _process(self, item: Item):
        frame = item.frame
        if frame.error is not None:
            self._drop(frame, "bad_frame", frame.error)
            return
        t_start = time.perf_counter()
        verdict, score, regions, lat = self.inspector.inspect(item.x, frame.image.shape[:2])
        rec = self._base(frame)
        rec.update(verdict=verdict, score=round(score, 6), regions=regions)
        lat.update(acquire=frame.acquire_s, preprocess=item.preprocess_s, queue=t_start - item.t_queued)
        t_emit = time.perf_counter()
        rec["latency_ms"] = {k: round(v * 1e3, 3) for k, v in lat.items()}
        rec["latency_ms"]["total"] = round((frame.acquire_s + t_emit - frame.t_grab) * 1e3, 3)  # up to the emit
        self._emit(rec)
        t_end = time.perf_counter()
        lat["emit"] = t_end - t_emit
        lat["total"] = frame.acquire_s + (t_end - frame.t_grab)  # frame arrival to verdict sent, plus the grab
        self.t.record(verdict, lat)
