"""edge-run's side of the live view: takes frames off the inspection thread without delaying a
verdict and hands them to the view's own process (edge.view.worker), which draws, encodes and
serves them at idle priority.

The analysis thread calls offer() for every inspected frame. offer() returns at once unless the
frame is wanted and its slot is free; then it copies the model-space source and the model output
(two float arrays, ~0.1 ms at 512x512) into the slot's shared file and sends the view process a
few hundred bytes saying so. Wanted: OK frames at most max_fps and only while a page is open; NG
parts at most max_fps of their own, always (so the page shows the last rejects when it opens, and
a rare reject is never skipped for an OK frame taken moments before). Each kind has one slot,
written only after the view process has drawn the last frame in it: nothing is queued, nothing
waited for, and no thread of edge-run wakes per frame (the view process answers through a shared
Control block, not messages).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}
STATS_EVERY_S = 0.5
START_TIMEOUT_S = 60.0  # the view process imports numpy, OpenCV and aiohttp: seconds on a small device
SHARED_FOLDER = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


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


def shared_file(kind: str, size: int) -> tuple[str, mmap.mmap]:
    """A new file of `size` bytes in shared memory (/dev/shm where there is one), mapped."""
    fd, path = tempfile.mkstemp(prefix=f"edge-view-{os.getpid()}-{kind}-", dir=SHARED_FOLDER)
    try:
        # reserve the space now: a full tmpfs then fails here (OSError), not as SIGBUS on a later write
        os.posix_fallocate(fd, 0, size)
        with os.fdopen(fd, "r+b", closefd=False) as f:
            return path, mmap.mmap(f.fileno(), size)
    except OSError:
        Path(path).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def sweep_stale_files() -> int:
    """Remove the shared files of edge-runs that died without cleaning up (kill -9 of both
    processes, a power cut does not apply to /dev/shm): their names carry the creator's pid.
    Files of a live edge-run (another camera's) stay."""
    removed = 0
    for path in Path(SHARED_FOLDER).glob("edge-view-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or not ours to signal): keep
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


# What the view process may see of edge-run's environment: no secrets (an MQTT password, tokens)
VIEW_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMD_LOG_LEVEL")


class Control:
    """A few numbers both processes read and write in place (no message, so no thread of
    edge-run wakes for them): per slot whether the view process still has to draw it, whether a
    statistics message waits, the pages open, and how many frames and NG parts were shown."""

    SLOTS = {"OK": 0, "NG": 1}   # flags[i]: 1 while the view process has that slot's frame to draw
    STATS = 2                    # flags[2]: 1 while a statistics message waits
    WATCHERS, SHOWN, NG_SHOWN = 0, 1, 2  # counts[i]
    SIZE = 32

    def __init__(self, path: str, mapping: mmap.mmap):
        self.path, self.map = path, mapping
        self.flags = np.frombuffer(mapping, np.uint8, 8)
        self.counts = np.frombuffer(mapping, np.int64, 3, offset=8)

    @classmethod
    def create(cls) -> "Control":
        return cls(*shared_file("ctl", cls.SIZE))

    @classmethod
    def open(cls, path: str) -> "Control":
        with open(path, "r+b") as f:
            return cls(path, mmap.mmap(f.fileno(), cls.SIZE))

    def close(self, unlink: bool):
        del self.flags, self.counts
        self.map.close()
        if unlink:
            Path(self.path).unlink(missing_ok=True)


def slot_arrays(mapping, dtype, shape) -> tuple[np.ndarray, np.ndarray]:
    """The layout of a slot's file, for both processes: the source, then the model output."""
    dtype, n = np.dtype(dtype), int(np.prod(shape))
    return (np.frombuffer(mapping, dtype, n).reshape(shape),
            np.frombuffer(mapping, dtype, n, offset=n * dtype.itemsize).reshape(shape))


class Slot:
    """One frame's source and model output in a file in shared memory, which the view process
    maps. Written only while its flag in the Control block says the view process is done with it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.path: str | None = None
        self._map: mmap.mmap | None = None

    def write(self, src: np.ndarray, rec: np.ndarray) -> tuple[str, str, tuple]:
        dtype = np.result_type(src.dtype, rec.dtype)
        need = 2 * src.size * dtype.itemsize
        if self._map is None or len(self._map) != need:  # first frame, or a reload changed the size
            self.close()
            self.path, self._map = shared_file(self.kind, need)
        for into, a in zip(slot_arrays(self._map, dtype, src.shape), (src, rec)):
            np.copyto(into, a)
        return self.path, dtype.str, src.shape

    def close(self):
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.path is not None:
            Path(self.path).unlink(missing_ok=True)
            self.path = None


class LiveView:
    def __init__(self, cfg, telemetry, where: str, archive=None):
        self.cfg, self.telemetry, self.archive = cfg, telemetry, archive
        self.token = token_for(cfg, where)
        self.min_interval = 1.0 / cfg.max_fps
        self._last_taken = {"OK": 0.0, "NG": 0.0}  # when a frame of each verdict was last taken
        self._slots = {"OK": Slot("OK"), "NG": Slot("NG")}
        self._ctl: Control | None = None
        self._send_lock = threading.Lock()  # the analysis thread and the stats thread both send
        self._stop = threading.Event()
        self.offered = self.taken = 0     # for tests and the page: how many were skipped
        self.address = self.port = None
        self._proc = self._conn = None
        self._alive = False
        self._no_room = False             # said once that shared memory is full
        self._stats_thread = self._watch_thread = None

    # what the view process reports through the Control block
    @property
    def watchers(self) -> int:
        """Pages open now (0 once the view process has gone)."""
        return int(self._ctl.counts[Control.WATCHERS]) if self._alive else 0

    @property
    def seq(self) -> int:
        return int(self._ctl.counts[Control.SHOWN]) if self._ctl is not None else 0

    @property
    def ng_seq(self) -> int:
        return int(self._ctl.counts[Control.NG_SHOWN]) if self._ctl is not None else 0

    def start_server(self, where: str) -> int:
        """Start the view's process; returns the port it listens on (exit 2 when it cannot)."""
        if importlib.util.find_spec("aiohttp") is None:
            raise InputError(where, "view.enabled", "needs aiohttp: pip install 'edge-inspect[view]'")
        sweep_stale_files()
        self._ctl = Control.create()
        ours, theirs = socket.socketpair()
        # -I: no user site, no PYTHON* variables, no current folder on the path; and only the
        # environment it needs: the process serves the network, edge-run's secrets stay in edge-run
        env = {k: os.environ[k] for k in VIEW_ENV if k in os.environ}
        self._proc = subprocess.Popen([sys.executable, "-I", "-m", "edge.view.worker", str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._conn = Connection(ours.detach())
        c = self.cfg
        self._conn.send(("settings", {"token": self.token, "host": c.host, "port": c.port, "where": where,
                                      "max_fps": c.max_fps, "ng_parts": c.ng_parts, "control": self._ctl.path}))
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise RuntimeError(f"the live view did not start in {START_TIMEOUT_S:.0f} s")
        try:  # JSON, never pickle: what comes back from a process that faces the network is data
            reply = json.loads(self._conn.recv_bytes(4096))
        except (EOFError, OSError, ValueError):
            self.close()
            raise RuntimeError(f"the live view's process ended at start (exit {self._proc.wait(5)})") from None
        if reply[0] == "error":
            self.close()
            raise InputError(where, reply[1], reply[2]) if reply[1] else RuntimeError(f"the live view did not start: {reply[2]}")
        self.address = tuple(reply[1])
        self.port = self.address[1]
        self._alive = True
        self._stats_thread = threading.Thread(target=self._stats_loop, name="view-stats", daemon=True)
        self._watch_thread = threading.Thread(target=self._watch_loop, name="view-watch", daemon=True)
        self._stats_thread.start()
        self._watch_thread.start()
        return self.port

    def _send(self, message, wait: bool) -> bool:
        """Never blocks for long: at most one message per slot and one of statistics are ever
        unread (the Control flags), far below the socket's buffer."""
        if not self._send_lock.acquire(blocking=wait):
            return False
        try:
            self._conn.send(message)
            return True
        except OSError:
            self._alive = False
            return False
        finally:
            self._send_lock.release()

    # -- the analysis thread ------------------------------------------------------------------
    def offer(self, record: dict, src: np.ndarray, rec: np.ndarray, frame_hw, recipe):
        self.offered += 1
        ng = record.get("verdict") == "NG"
        if not self._alive or (not ng and not self._ctl.counts[Control.WATCHERS]):
            return  # nobody is looking: an OK frame is not worth a copy
        kind = "NG" if ng else "OK"
        flag, now = Control.SLOTS[kind], time.monotonic()
        if self._ctl.flags[flag] or now - self._last_taken[kind] < self.min_interval:
            return  # one of its kind was taken moments ago, or is still being drawn: skip this one
        self._last_taken[kind] = now
        d = recipe.decision
        meta = {k: record[k] for k in ("frame_id", "verdict", "score", "regions", "time", "source") if k in record}
        meta.update(threshold=d.score_threshold if d.rule == "score" else None, rule=d.rule, min_area=d.min_area)
        if ng and self.archive is not None:  # where the full-size frame and overlay are kept
            meta["archived"] = str(self.archive.folder / f"{self.archive.stem(record)}_overlay.png")
        try:
            path, dtype, shape = self._slots[kind].write(src, rec)
        except OSError as e:  # no room in shared memory: the view goes without, inspection does not notice
            if not self._no_room:
                self._no_room = True
                log.warning("live view: no room for a %dx%d frame in %s (%s); frames that size are not shown",
                            src.shape[1], src.shape[0], SHARED_FOLDER, e.strerror)
            return
        self._ctl.flags[flag] = 1  # the view process clears it when it has drawn the frame
        if self._send(("frame", kind, path, dtype, shape, meta, tuple(frame_hw), recipe.detect.method == "probability"),
                      wait=False):
            self.taken += 1
        else:
            self._ctl.flags[flag] = 0  # the stats thread was sending: skip this one

    # -- edge-run's view threads (normal priority, asleep but twice a second) ------------------------
    def _stats_loop(self):
        """The statistics, twice a second while a page is open and the last ones were taken."""
        while not self._stop.wait(STATS_EVERY_S):
            if not self._alive:
                return
            if self.watchers and not self._ctl.flags[Control.STATS]:
                self._ctl.flags[Control.STATS] = 1
                self._send(("stats", {"telemetry": self.telemetry.snapshot(), "offered": self.offered}), wait=True)

    def _watch_loop(self):
        """Blocks until the view process goes (its end of the socket closes)."""
        while True:
            try:
                self._conn.recv_bytes(4096)
            except (EOFError, OSError):
                break
        self._alive = False  # offer() returns at once from now on
        if not self._stop.is_set():
            log.error("the live view stopped (its process exited with %s); inspection goes on", self._proc.poll())

    def close(self):
        self._stop.set()
        if self._stats_thread is not None:
            self._stats_thread.join(5)
        if self._conn is not None:
            # shut the socket down: wakes the watch thread's recv, and the view process stops
            with socket.socket(fileno=os.dup(self._conn.fileno())) as s:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._watch_thread is not None:
            self._watch_thread.join(5)
        self._alive = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # closing twice (the station's exit stack after a failed start) is harmless
        self._proc = self._stats_thread = self._watch_thread = None
        for slot in self._slots.values():
            slot.close()
        if self._ctl is not None:
            self._ctl.close(unlink=True)
            self._ctl = None
