"""The live view's own process: draws and encodes the frames edge-run hands over, keeps the
latest frame, the last NG parts and the statistics, and serves the page (edge.view.server).

A process of its own, at idle priority, because threads in edge-run share its interpreter lock
with inspection: a view thread preempted while holding it made the analysis thread wait
(measured: 0.93-0.96x throughput in-process at 1024x1024, docs/BENCHMARKS.md). Here the view
uses only cores inspection leaves idle, and nothing it does can hold a lock inspection needs.

Protocol on the socket edge-run passes (multiprocessing Connection, pickled tuples):
  in:  ("settings", dict) first; ("frame", kind, path, dtype, shape, meta, frame_hw, probability);
       ("stats", dict)
  out: ("ready", (host, port)) or ("error", key, message), once
and in the Control block (edge.view.live.Control): a slot's flag cleared once its frame is drawn,
the statistics flag once they are taken, the pages open, frames and NG parts shown.
The process ends when the socket closes (edge-run stopped or died).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection

import cv2
import numpy as np

from ..errors import InputError
from ..overlay import anomaly_map, overlay
from .live import Control, slot_arrays

log = logging.getLogger("edge.view.worker")  # run as -m: __name__ is __main__

VIEW_WIDTH = 640
THUMB_WIDTH = 200


def idle_priority():
    """Run this thread, and every thread it starts afterwards, only when a core would otherwise be
    idle (Linux SCHED_IDLE; nice 19 elsewhere)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


class Shown:
    """What the page shows, written by the worker's main thread, read by the server's thread."""

    def __init__(self, settings: dict, ctl: Control):
        self.token, self.max_fps, self.ctl = settings.get("token"), settings["max_fps"], ctl
        self._lock = threading.Lock()
        self.seq = self.ng_seq = 0
        self.frame: tuple[dict, bytes] | None = None                    # (meta, JPEG)
        self.ng: deque = deque(maxlen=max(1, settings["ng_parts"]))     # (meta, JPEG thumbnail), newest last
        self.stats: dict | None = None    # replaced, never changed: the server encodes each once
        self.watchers = 0
        self.listeners: list = []         # run after each new frame or statistics (the server's wake-up)
        self._maps: dict[str, tuple[str, mmap.mmap]] = {}  # slot kind -> (file, mapping)

    # -- the server's thread ----------------------------------------------------------------------
    def page_opened(self):
        self.watchers += 1
        self.ctl.counts[Control.WATCHERS] = self.watchers

    def page_closed(self):
        self.watchers -= 1
        self.ctl.counts[Control.WATCHERS] = self.watchers

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

    # -- the main thread ----------------------------------------------------------------------------
    def arrays(self, kind: str, path: str, dtype: str, shape) -> tuple[np.ndarray, np.ndarray]:
        """The source and model output edge-run wrote into the slot's shared file."""
        if kind not in self._maps or self._maps[kind][0] != path:
            if kind in self._maps:
                try:
                    self._maps[kind][1].close()
                except BufferError:
                    pass
            with open(path, "r+b") as f:
                self._maps[kind] = (path, mmap.mmap(f.fileno(), 0))
        return slot_arrays(self._maps[kind][1], dtype, shape)

    def draw(self, kind, path, dtype, shape, meta, frame_hw, probability):
        try:
            src, rec = self.arrays(kind, path, dtype, shape)
            _, picture = overlay(src, anomaly_map(src, rec, probability), meta.get("regions", []), frame_hw,
                                 probability=probability, width=VIEW_WIDTH)
            del src, rec  # no view of the shared file outlives this frame
            jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            thumb = None
            if meta["verdict"] == "NG":
                small = cv2.resize(picture, (THUMB_WIDTH, max(1, picture.shape[0] * THUMB_WIDTH // picture.shape[1])),
                                   interpolation=cv2.INTER_AREA)
                thumb = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        except Exception as e:  # one bad frame must not end the view
            log.error("live view: frame %s not shown: %s: %s", meta.get("frame_id"), type(e).__name__, e)
            self.ctl.flags[Control.SLOTS[kind]] = 0
            return
        with self._lock:
            self.seq += 1
            meta["seq"] = self.seq
            self.frame = (meta, jpeg)
            if thumb is not None:
                self.ng_seq += 1
                self.ng.append(({**meta, "ng_seq": self.ng_seq}, thumb))
        self.ctl.counts[[Control.SHOWN, Control.NG_SHOWN]] = (self.seq, self.ng_seq)
        self.ctl.flags[Control.SLOTS[kind]] = 0  # edge-run may write the slot again
        self._wake()

    def set_stats(self, parent: dict):
        stats = parent["telemetry"]
        stats["ng_parts"] = self.ng_parts()
        stats["view"] = {"offered": parent["offered"], "shown": self.seq, "max_fps": self.max_fps,
                         "watchers": self.watchers}
        self.stats = stats
        self.ctl.flags[Control.STATS] = 0
        self._wake()

    def _wake(self):
        for wake in list(self.listeners):
            wake()

    def close(self):
        """Also removes the shared files, so that none is left behind when edge-run was killed."""
        for path, m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a view of it still alive: the mapping goes with the process
                pass
            if os.path.basename(path).startswith("edge-view-"):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def main(argv=None) -> int:
    # Its life is the socket's: a Ctrl-C, a terminal hang-up or systemd's SIGTERM to the whole
    # group must not end it before edge-run (which would log "the live view stopped" at every stop,
    # or a KeyboardInterrupt traceback); edge-run closing the socket does. SIGKILL still works.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    idle_priority()  # first: the server's threads inherit it
    cv2.setNumThreads(1)  # a helper thread per core would only contend with inspection for the idle time
    from ..log import setup
    setup("edge-run")  # it is edge-run's view process: its lines read as edge-run's
    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    kind, settings = conn.recv()
    assert kind == "settings", kind
    ctl = Control.open(settings["control"])
    shown = Shown(settings, ctl)
    from .server import ViewServer
    try:
        server = ViewServer(shown, settings["host"], settings["port"], settings["where"])
    except InputError as e:
        conn.send_bytes(json.dumps(["error", e.key, e.message]).encode())
        return 2
    except Exception as e:
        conn.send_bytes(json.dumps(["error", None, f"{type(e).__name__}: {e}"]).encode())
        return 1
    conn.send_bytes(json.dumps(["ready", list(server.address)]).encode())  # JSON: edge-run unpickles nothing
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return 0  # edge-run closed the socket: stop
            if message[0] == "frame":
                shown.draw(*message[1:])
            elif message[0] == "stats":
                shown.set_stats(message[1])
    finally:
        server.close()
        shown.close()
        ctl.close(unlink=True)  # edge-run removes it too; this is for an edge-run that was killed


if __name__ == "__main__":
    sys.exit(main())
