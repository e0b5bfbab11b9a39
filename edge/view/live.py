"""What the view shows, taken off the inspection threads without delaying a verdict.

The analysis thread calls offer() for every inspected frame. offer() returns at once unless the
frame is wanted and no other frame waits for the encoder; then it copies the model-space source
and the model output (two float arrays, ~0.1 ms at 512x512) and wakes the encoder thread, which
does everything else (heat map, boxes, JPEG) at idle priority. Wanted: OK frames at most max_fps
and only while a page is open; NG parts at most max_fps of their own, always (so the page shows
the last rejects when it opens, and a rare reject is not skipped for a moment-old OK frame), and
an NG part takes the place of an OK frame still waiting. Nothing is ever queued or waited for.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import cv2
import numpy as np

from ..errors import InputError
from ..overlay import anomaly_map, overlay

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}
STATS_EVERY_S = 0.5
VIEW_WIDTH = 640
THUMB_WIDTH = 200


def token_for(cfg, where: str) -> str | None:
    """The access token, or None on a local address without one; refuses a non-local address
    without a token (exit 2), so the page is never open to the plant network by mistake."""
    token = os.environ.get(cfg.token_env, "") if cfg.token_env else ""
    if cfg.token_env and not token:
        raise InputError(where, "view.token_env", f"environment variable {cfg.token_env} is empty or unset")
    if cfg.host not in LOCAL_HOSTS and not token:
        raise InputError(where, "view.host", f"{cfg.host} is reachable from other machines: set view.token_env "
                                             "to an environment variable holding an access token")
    return token or None


def lower_priority():
    """Run the calling thread only when a core would otherwise be idle (Linux SCHED_IDLE, per
    thread; nice 19 elsewhere), so the view never takes a core from inspection: under full load
    it shows fewer frames, and no verdict waits for it."""
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)
        except (AttributeError, OSError):
            pass


class LiveView:
    def __init__(self, cfg, telemetry, where: str, archive=None):
        self.cfg, self.telemetry, self.archive = cfg, telemetry, archive
        self.token = token_for(cfg, where)
        self.min_interval = 1.0 / cfg.max_fps
        self._last_taken = {"OK": 0.0, "NG": 0.0}  # when a frame of each verdict was last taken
        self._pending = None              # the one frame waiting for the encoder (guarded by _lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()     # guards _pending, frame and ng (encoder writes, server reads)
        self.seq = 0                      # frames shown so far
        self.frame: tuple[dict, bytes] | None = None    # (meta, JPEG)
        self.ng: deque = deque(maxlen=max(1, cfg.ng_parts))  # (meta, JPEG thumbnail), newest last
        self.ng_seq = 0
        self.offered = self.taken = 0     # for tests and the page: how many were skipped
        self.watchers = 0                 # pages connected now (the server counts them)
        self.stats: dict | None = None    # the latest statistics for the page (replaced, never changed)
        self.listeners: list = []         # callables run after each new frame or statistics (the server's wake-up)
        self._encoder = threading.Thread(target=self._encode_loop, name="view-encoder", daemon=True)
        self._encoder.start()
        self._stats_thread = threading.Thread(target=self._stats_loop, name="view-stats", daemon=True)
        self._stats_thread.start()
        self.server = None

    def start_server(self, where: str):
        from .server import ViewServer
        self.server = ViewServer(self, self.cfg.host, self.cfg.port, where)
        return self.server.port

    # -- the analysis thread ------------------------------------------------------------------
    def offer(self, record: dict, src: np.ndarray, rec: np.ndarray, frame_hw, recipe):
        self.offered += 1
        ng = record.get("verdict") == "NG"
        if not ng and not self.watchers:
            return  # nobody is looking: an OK frame is not worth a copy
        now, kind = time.monotonic(), "NG" if ng else "OK"
        waiting = self._pending  # read without the lock: a stale answer only skips or takes one frame
        as_wanted_waits = waiting is not None and (not ng or waiting[0]["verdict"] == "NG")
        if as_wanted_waits or now - self._last_taken[kind] < self.min_interval:
            return  # one of its kind was taken moments ago, or one as wanted waits: skip this one
        self._last_taken[kind] = now
        d = recipe.decision
        meta = {k: record[k] for k in ("frame_id", "verdict", "score", "regions", "time", "source") if k in record}
        meta.update(threshold=d.score_threshold if d.rule == "score" else None, rule=d.rule, min_area=d.min_area)
        if ng and self.archive is not None:  # where the full-size frame and overlay are kept
            meta["archived"] = str(self.archive.folder / f"{self.archive.stem(record)}_overlay.png")
        job = (meta, src.copy(), rec.copy(), tuple(frame_hw), recipe.detect.method == "probability")
        if not self._lock.acquire(blocking=False):
            return  # held by a view thread (idle priority, maybe not running): never wait for it
        self._pending = job
        self._lock.release()
        self.taken += 1
        self._wake.set()

    # -- the encoder thread ---------------------------------------------------------------------
    def _encode_loop(self):
        lower_priority()
        while not self._stop.is_set():
            if not self._wake.wait(0.5):
                continue
            self._wake.clear()
            with self._lock:
                job, self._pending = self._pending, None
            if job is None:
                continue
            meta, src, rec, frame_hw, probability = job
            try:
                _, picture = overlay(src, anomaly_map(src, rec, probability), meta.get("regions", []), frame_hw,
                                     probability=probability, width=VIEW_WIDTH)
                jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                thumb = None
                if meta["verdict"] == "NG":
                    small = cv2.resize(picture, (THUMB_WIDTH, max(1, picture.shape[0] * THUMB_WIDTH // picture.shape[1])),
                                       interpolation=cv2.INTER_AREA)
                    thumb = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            except Exception:  # a view failure must never reach inspection
                continue
            with self._lock:
                self.seq += 1
                meta["seq"] = self.seq
                self.frame = (meta, jpeg)
                if thumb is not None:
                    self.ng_seq += 1
                    self.ng.append(({**meta, "ng_seq": self.ng_seq}, thumb))
            for wake in list(self.listeners):
                wake()

    # -- the statistics thread ------------------------------------------------------------------
    def _stats_loop(self):
        """At normal priority on purpose: the snapshot takes the telemetry's lock, which inspection
        takes for every frame, and a thread at idle priority could be preempted while holding it.
        It costs about a millisecond twice a second, and nothing while no page is open."""
        while not self._stop.wait(STATS_EVERY_S):
            if not self.watchers:
                continue
            try:
                stats = self.telemetry.snapshot()
                stats["ng_parts"] = self.ng_parts()
                stats["view"] = {"offered": self.offered, "shown": self.seq, "max_fps": self.cfg.max_fps,
                                 "watchers": self.watchers}
            except Exception:  # a view failure must never reach inspection
                continue
            self.stats = stats
            for wake in list(self.listeners):
                wake()

    # -- read by the server -------------------------------------------------------------------------
    def latest(self):
        with self._lock:
            return self.frame

    def ng_parts(self) -> list[dict]:
        with self._lock:
            return [m for m, _ in reversed(self.ng)]

    def ng_jpeg(self, ng_seq: int) -> bytes | None:
        with self._lock:
            for m, jpeg in self.ng:
                if m["ng_seq"] == ng_seq:
                    return jpeg
        return None

    def close(self):
        self._stop.set()
        self._wake.set()
        if self.server is not None:
            self.server.close()
        self._encoder.join(5)
        self._stats_thread.join(5)
