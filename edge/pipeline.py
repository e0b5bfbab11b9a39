"""source -> preprocess -> infer -> detect -> decide -> outputs, with every frame accounted for.

Three threads: acquisition (grab + preprocess into model space) feeds a bounded queue; the
inference thread tiles, runs the model and stitches; the calling thread detects, decides and
emits. ONNX Runtime, OpenCV and the Numba kernels release the GIL, so acquisition of frame n+2,
inference of frame n+1 and detection of frame n overlap.
A live camera whose queue is full drops the new frame (counted, reason queue_full) rather than
stall the camera; replay waits instead.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from .buffers import Lease
from .errors import SourceError
from .inspector import Inspector
from .recipe import Recipe
from .sources import EndOfStream, Frame, Source
from .telemetry import Stage, Telemetry, Timings
from .verdict import Record, Verdict

log = logging.getLogger(__name__)

_END = object()


@dataclass
class Item:
    """One frame on its way through the threads. It owns x (a fresh array per frame) and, once
    inferred, the lease on its stitched model output, which the analysis stage releases."""
    frame: Frame
    x: np.ndarray | None  # model-space frame
    timings: Timings      # each stage adds its own time, on whichever thread it runs
    t_queued: float
    detection: object = None  # edge.detect.Detection when it ran on the GPU


@dataclass(frozen=True)
class Reload:
    """What a reload request gives the pipeline to apply between two frames."""
    recipe: Recipe | None = None
    outputs: list | None = None  # replaces the running outputs, which the pipeline closes


class Pipeline:
    """Runs one camera. Built complete (edge.station builds it from a config); from other
    threads only stop_event and request_reload() touch it."""

    def __init__(self, source: Source, inspector: Inspector, outputs: list, telemetry: Telemetry, *,
                 queue_size: int = 4, drop_when_full: bool | None = None, max_frames: int = 0,
                 progress_s: float = 0.0, first: Frame | None = None, overlap: bool = True,
                 stop_event: threading.Event | None = None, reconnect: tuple[int, float] = (0, 0.5),
                 archive=None, view=None):
        self.source, self.inspector, self.outputs, self.t = source, inspector, outputs, telemetry
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.drop_when_full = source.live if drop_when_full is None else drop_when_full
        self.max_frames, self.progress_s = max_frames, progress_s
        self.first = first
        self.overlap = overlap  # detect frame n while frame n+1 is inferred (else one after the other)
        self.stop_event = stop_event or threading.Event()
        self.reconnect_attempts, self.reconnect_backoff = reconnect
        self.last_grab = time.monotonic()      # for the watchdog: acquisition is alive
        self.last_verdict = time.monotonic()   # for the watchdog: analysis is alive
        self._infer_since: float | None = None  # when the frame now in the model went in (None: none is)
        self._reloads: queue.SimpleQueue = queue.SimpleQueue()  # requests, applied between frames
        # records of frames the acquisition thread drops (queue_full), emitted by the thread that
        # emits every other record: outputs are only ever touched from one thread, so a reload
        # that replaces them between two frames cannot lose a record into a closed output
        self._dropped_records: queue.SimpleQueue = queue.SimpleQueue()
        self.archive = archive  # edge.archive.Archive for NG frames, or None
        self.view = view  # edge.view.LiveView, or None: offered every frame, takes a few
        self.error: BaseException | None = None
        self._failure_logged: dict[str, float] = {}

    # -- records --------------------------------------------------------------------------
    def _record(self, frame: Frame, verdict: Verdict, **fields) -> Record:
        return Record(self.inspector.station, self.inspector.camera, frame.frame_id, frame.timestamp, frame.name,
                      datetime.now(timezone.utc).isoformat(timespec="milliseconds"), verdict, **fields)

    def _emit(self, record: Record):
        """Called on the emitting thread only (analysis; inference when not overlapping)."""
        self._flush_dropped()
        self._to_outputs(record.to_record())

    def _flush_dropped(self):
        while not self._dropped_records.empty():  # the usual case costs one check per record
            self._to_outputs(self._dropped_records.get().to_record())  # only this thread takes: never blocks

    def _to_outputs(self, record: dict):
        """Every output gets the record; one that raises (a closed stdout, a camera line whose
        camera was reconnected) is counted and logged and tried again with the next record, and
        never keeps the others or the station from going on."""
        for out in self.outputs:
            try:
                out.emit(record)
            except Exception as e:
                self._failed(f"output {type(out).__name__}", e)

    def _failed(self, what: str, e: Exception):
        """Count a failure by what failed; log it the first time and then at most once a minute."""
        count = self.t.failure(what)
        now = time.monotonic()
        if count == 1 or now - self._failure_logged.get(what, 0.0) >= 60:
            self._failure_logged[what] = now
            log.error("%s failed (%s: %s); %d failure(s) so far, going on", what, type(e).__name__, e, count)

    def _drop_record(self, frame: Frame, reason: str, detail: str = "") -> Record:
        self.t.drop(reason)
        return self._record(frame, Verdict.DROPPED, reason=reason, detail=detail or None)

    def _drop(self, frame: Frame, reason: str, detail: str = ""):
        self._emit(self._drop_record(frame, reason, detail))

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
                except SourceError as e:
                    if not self._reconnect(e):
                        if self.stop_event.is_set():
                            break  # stopped while reconnecting (SIGTERM): a clean stop, not a failure
                        raise
                    continue
                self.last_grab = time.monotonic()
                if frame is None:
                    self.t.timeout()
                    continue
                grabbed += 1
                self._enqueue(frame)
        except BaseException as e:  # a camera or source failure ends the run; frames queued still get verdicts
            self.error = self.error or e
        finally:
            self.queue.put(_END)

    def _reconnect(self, cause: Exception) -> bool:
        """Reopen a lost source with exponential backoff. False when every attempt failed."""
        delay = self.reconnect_backoff
        for attempt in range(1, self.reconnect_attempts + 1):
            self.t.reconnects += 1
            log.warning("%s; reopening in %.1f s (attempt %d/%d)", cause, delay, attempt, self.reconnect_attempts)
            # waiting out the backoff is honest work: the watchdog stays fed in steps (a backoff of
            # 8 s outlasts WatchdogSec); an attempt that hangs inside the driver is not fed
            end = time.monotonic() + delay
            while (left := end - time.monotonic()) > 0:
                self.last_grab = time.monotonic()
                if self.stop_event.wait(min(left, 0.2)):  # well inside any watchdog window
                    return False
            self.source.__exit__(None, None, None)
            try:
                self.source.__enter__()
                log.info("source reopened after %d attempt(s)", attempt)
                self.last_grab = time.monotonic()
                return True
            except Exception as e:  # still gone: the producer's or our own error, try again
                cause = e
                delay = min(delay * 2, 30.0)
        self.error = SourceError(f"{cause}; gave up after {self.reconnect_attempts} reopen attempts")
        return False

    def _enqueue(self, frame: Frame):
        self.t.grabbed_one()
        if frame.meta.get("camera_gap"):  # the camera skipped ids: counted apart from the station's drops
            self.t.camera_skip(frame.meta["camera_gap"])
        t0 = time.perf_counter()
        x = None
        if frame.error is None:
            assert frame.image is not None  # a frame without an error has its image
            try:
                x = self.inspector.pre.to_model_space(frame.image, frame.bits)
            except Exception as e:  # a frame the preprocessing cannot take (odd channels or depth)
                frame.error = f"preprocess failed: {type(e).__name__}: {e}"
        t1 = time.perf_counter()
        item = Item(frame, x, Timings({Stage.ACQUIRE: frame.acquire_s, Stage.PREPROCESS: t1 - t0}), t1)
        if not self.drop_when_full:
            self.queue.put(item)
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:  # acquisition thread: the record goes out with the emitting thread's next
            self._dropped_records.put(self._drop_record(frame, "queue_full"))

    # -- inference and analysis ---------------------------------------------------------------
    def run(self) -> Telemetry:
        """Acquisition thread -> inference thread -> analysis (this thread): detection and emission
        of frame n overlap inference of frame n+1."""
        if self.first is not None:
            self.first.t_grab = time.perf_counter()  # its wait through the warm-up is not station latency
        self.t.started = time.perf_counter()
        analysis: queue.Queue = queue.Queue(maxsize=1)  # items carry leases on their stitched outputs
        threads = [threading.Thread(target=self._acquire, name="acquire", daemon=True),
                   threading.Thread(target=self._infer, args=(analysis,), name="infer", daemon=True)]
        for th in threads:
            th.start()
        next_progress = time.perf_counter() + self.progress_s if self.progress_s else None
        try:
            while True:
                try:
                    got = analysis.get(timeout=0.2)
                except queue.Empty:
                    # idle, not stuck: only while no frame waits and none is in the model (a hung
                    # model leaves this queue empty too, while the camera's frames are dropped)
                    if self.queue.empty() and self._infer_since is None:
                        self.last_verdict = time.monotonic()
                    if self.overlap:  # this thread emits; otherwise the inference thread does
                        self._apply_reload()
                        self._flush_dropped()
                    continue
                if got is _END:
                    break
                self._apply_reload()
                try:
                    self._analyse(*got)
                except Exception as e:  # a fault in detection or the archive: the frame still gets its record
                    self._failed("analysis", e)
                    self._drop(got[0].frame, "analysis_failed", f"{type(e).__name__}: {e}"[:200])
                self.last_verdict = time.monotonic()
                if next_progress is not None and time.perf_counter() >= next_progress:
                    log.info("%s", self.t.progress_line())
                    next_progress += self.progress_s
        finally:  # on a failure, let the other threads finish instead of blocking on full queues
            self.stop_event.set()
            for q in (analysis, self.queue):
                while threads[0].is_alive() or threads[1].is_alive():
                    try:
                        q.get(timeout=0.05)
                    except queue.Empty:
                        break
            for th in threads:
                th.join()
            self._flush_dropped()  # drops after the last verdict
        return self.t

    def request_reload(self, request: Callable[[], Reload | None]):
        """Thread-safe (a signal handler may call it). `request` runs on the emitting thread
        between two frames and returns what to swap in (None: nothing)."""
        self._reloads.put(request)

    def _apply_reload(self):
        """Swap in a reloaded recipe and outputs between two frames: none is skipped or dropped.
        Replaced outputs are closed without waiting (their spool keeps what is undelivered)."""
        pending = []
        while not self._reloads.empty():  # the ones asked for so far: later ones wait for the next frame
            pending.append(self._reloads.get())
        for request in pending:
            try:
                reload = request()
            except Exception as e:  # whatever the new config does, the running one stays
                self._failed("reload", e)
                continue
            if reload is None:
                continue
            if reload.recipe is not None:
                self.inspector.set_recipe(reload.recipe)
            if reload.outputs is not None:
                from .outputs import close_all
                old, self.outputs = self.outputs, reload.outputs
                close_all([out for out in old if out not in self.outputs], wait=False)  # kept ones run on

    def healthy(self, within_s: float) -> bool:
        """Acquisition returned (a frame or a timeout) and analysis moved, both within `within_s`."""
        now = time.monotonic()
        return now - self.last_grab < within_s and now - self.last_verdict < within_s

    def _infer(self, analysis: queue.Queue):
        if self.inspector.runner.overlaps:
            return self._infer_overlapped(analysis)
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    break
                self._deliver(analysis, item, self._reconstruct(item))
        except BaseException as e:  # the model failed: end the run; what was analysed is emitted
            self.error = self.error or e
        finally:
            self._release_runner()
            analysis.put(_END)

    def _release_runner(self):
        """The inference thread's last act: whatever the runner bound to it (a pushed CUDA context)."""
        try:
            self.inspector.runner.release_thread()
        except Exception as e:
            self._failed("runner release", e)

    def _reconstruct(self, item: Item) -> Lease | None:
        item.timings.add(Stage.QUEUE, time.perf_counter() - item.t_queued)
        if item.frame.error is not None:
            return None
        assert item.x is not None  # preprocessed: the frame has no error
        self._infer_since = time.monotonic()
        try:
            with item.timings.timed(Stage.INFER):
                return self.inspector.reconstruct_leased(item.x)
        finally:
            self._infer_since = None

    def _deliver(self, analysis: queue.Queue, item: Item, lease: Lease | None):
        if self.overlap:
            analysis.put((item, lease))
        else:  # this thread emits too
            self._apply_reload()
            self._analyse(item, lease)

    def _infer_overlapped(self, analysis: queue.Queue):
        """GPU runner: frame n+1 is submitted (cut into pinned memory, uploaded, launched) before
        frame n is collected, so its upload overlaps frame n's compute and download on the other
        stream. A frame waits for a successor only while one is already queued: never for the camera.
        Frames the runner cannot take in one batch (or bad frames) go the synchronous way, in order."""
        ins, pending = self.inspector, None

        def finish(p):
            item, handle = p
            self._infer_since = self._infer_since or time.monotonic()
            try:
                lease, item.detection = ins.collect(handle, item.timings)
            finally:
                self._infer_since = None
            self._deliver(analysis, item, lease)

        try:
            while True:
                try:
                    item = self.queue.get_nowait() if pending is not None else self.queue.get()
                except queue.Empty:  # nothing to overlap with: finish the frame in flight now
                    finish(pending)
                    pending = None
                    continue
                if item is _END:
                    break
                if item.frame.error is not None or not ins.can_submit(item.x):
                    if pending is not None:
                        finish(pending)  # keep the order
                        pending = None
                    self._deliver(analysis, item, self._reconstruct(item))
                    continue
                item.timings.add(Stage.QUEUE, time.perf_counter() - item.t_queued)
                started = (item, ins.submit(item.x))
                if pending is not None:
                    finish(pending)
                pending = started
            if pending is not None:
                finish(pending)
        except BaseException as e:
            self.error = self.error or e
        finally:
            self._release_runner()
            analysis.put(_END)

    def _analyse(self, item: Item, lease: Lease | None):
        frame = item.frame
        if frame.error is not None:
            self._drop(frame, "bad_frame", frame.error)
            return
        assert lease is not None and item.x is not None and frame.image is not None  # no error: all three exist
        try:
            rec = lease.array
            a = self.inspector.analyse(item.x, rec, frame.image.shape[:2], item.detection, item.timings)
            if a.verdict is Verdict.DROPPED:
                self._drop(frame, "non_finite", "the model output or the score is NaN or infinite")
                return
            finite = math.isfinite(a.score)
            record = self._record(frame, a.verdict, score=round(a.score, 6) if finite else None, regions=a.regions,
                                  reason=None if finite else "non_finite")
            src = item.x if item.x.ndim == 2 else item.x[0]
            # the archive and the view get their own dict of the record (the verdict, not its latency)
            if a.verdict is Verdict.NG and finite and self.archive is not None:  # the archive copies what it keeps
                self.archive.submit(record.to_record(), src, rec, (frame.image.shape[0] / src.shape[0],
                                                       frame.image.shape[1] / src.shape[1]),
                                    self.inspector.recipe.detect.method == "probability")
            if self.view is not None:  # copies a few frames a second, never waits
                self.view.offer(record.to_record(), src, rec, frame.image.shape[:2], self.inspector.recipe)
        finally:
            lease.release()
        lat = a.latency  # item.timings, with detect and decide added
        t_emit = time.perf_counter()
        latency_ms = {str(k): round(v * 1e3, 3) for k, v in lat.items()}
        latency_ms["total"] = round((frame.acquire_s + t_emit - frame.t_grab) * 1e3, 3)  # up to the emit
        self._emit(dataclasses.replace(record, latency_ms=latency_ms))
        t_end = time.perf_counter()
        lat[Stage.EMIT] = t_end - t_emit
        lat[Stage.TOTAL] = frame.acquire_s + (t_end - frame.t_grab)  # frame arrival to verdict sent, plus the grab
        self.t.record(a.verdict, lat)
