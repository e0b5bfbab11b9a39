"""Delivery of verdicts to a network output that may be down, without ever stalling inspection.

emit() commits the record to the output's on-disk spool (write-ahead, ~40 us) and returns. One
thread per output reads the spool oldest first, sends, and deletes what the peer acknowledged;
while the peer is down it retries with exponential backoff and the spool fills. So order is the
spool's order, a restart after a crash (kill -9, power cut: see spool.py for the fsync policy)
delivers what was left, and delivery is at least once.

If the spool itself cannot be written (disk full, read-only), records wait in memory (bounded,
counted when dropped) and are committed ahead of newer ones once the disk takes them again.

close() lets the thread deliver for drain_s, then stops it; what is undelivered stays in the
spool for the next start. close(wait=False) (a reload) does not wait: the output replacing it
on the same spool starts delivering once the old thread has stopped, so order holds.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

from ..telemetry import OutputStats
from .spool import Spool

log = logging.getLogger(__name__)

MEMORY_LIMIT = 10_000  # records held in memory while the spool cannot be written
ACK_EVERY = 64         # delete delivered records in batches of this many (or when idle)

_threads: dict[Path, threading.Thread] = {}  # the delivery thread of each spool file, old or new
_threads_lock = threading.Lock()


class Transport(Protocol):
    name: str

    def connect(self) -> None:
        """Connect or raise (OSError, ConnectionError, TimeoutError...)."""

    def send(self, record: dict, age_s: float) -> None:
        """Deliver one record, acknowledged, or raise; age_s: seconds since it was emitted."""

    def idle(self) -> None:
        """Called about every idle_s while connected with nothing to send (heartbeats)."""

    def close(self) -> None: ...


class QueuedOutput:
    def __init__(self, transport: Transport, spool_path: Path, max_items: int, stats: OutputStats,
                 idle_s: float = 1.0, backoff: tuple[float, float] = (0.2, 10.0), drain_s: float = 3.0,
                 fsync_s: float = 1.0):
        self.transport, self.stats = transport, stats
        self.idle_s, self.backoff, self.drain_s = idle_s, backoff, drain_s
        self.spool = Spool(spool_path, max_items, fsync_s)
        if self.spool.moved_aside is not None:
            log.error("output %s: the spool %s was damaged; moved aside to %s (its undelivered verdicts may be "
                      "read from it), a new one started", transport.name, spool_path, self.spool.moved_aside.name)
        self.stats.depth_spool = self.spool.depth
        self._unsaved: deque = deque()  # (t, record) the spool refused, oldest first
        self._cond = threading.Condition()
        self._emitted = 0  # records emitted so far: the thread sleeps only when nothing came since it looked
        self._closing_at: float | None = None
        self._logged_at = -60.0
        self._thread = threading.Thread(target=self._run, name=f"output-{transport.name}", daemon=True)
        key = spool_path.resolve()
        with _threads_lock:
            self._previous = _threads.get(key)  # a closed output on the same spool may still be stopping
            _threads[key] = self._thread
        self._thread.start()

    # -- called by the pipeline (the emitting thread) -----------------------------------------
    def emit(self, record: dict):
        t = time.time()
        try:
            while self._unsaved:  # older records first
                self.stats.overflow += self.spool.append(*self._unsaved[0])
                self._unsaved.popleft()
            self.stats.overflow += self.spool.append(t, record)
        except sqlite3.Error as e:
            self.stats.last_error = f"spool {self.spool.path}: {e}"[:200]
            self._unsaved.append((t, record))
            if len(self._unsaved) > MEMORY_LIMIT:
                self._unsaved.popleft()
                self.stats.overflow += 1
        self.stats.depth_memory = len(self._unsaved)
        self.stats.depth_spool = self.spool.depth
        with self._cond:
            self._emitted += 1
            self._cond.notify()

    def close(self, wait: bool = True):
        with self._cond:
            self._closing_at = time.monotonic() - (0 if wait else self.drain_s)
            self._cond.notify()
        if wait:
            self._thread.join(self.drain_s + 10)

    # -- delivery thread ------------------------------------------------------------------------
    def _run(self):
        if self._previous is not None:
            self._previous.join()  # its in-flight send ends within the transport's timeout
            self.spool.recount()  # it deleted what it delivered meanwhile
            self.stats.depth_spool = self.spool.depth
        connected, delay, next_try = False, self.backoff[0], 0.0
        sent = acked = 0  # spool seq of the last record sent / deleted
        try:
            while True:
                try:
                    closing = self._closing_at is not None
                    if closing and time.monotonic() - self._closing_at >= self.drain_s:
                        break
                    if not connected:
                        if closing and not self.spool.depth:
                            break
                        now = time.monotonic()
                        if now < next_try:
                            with self._cond:
                                self._cond.wait(min(next_try - now, 0.5))
                            continue
                        try:
                            self.transport.connect()
                            connected, delay = True, self.backoff[0]
                            self.stats.connected = True
                        except Exception as e:  # any transport failure means: not connected, try later
                            self.stats.last_error = f"{type(e).__name__}: {e}"[:200]
                            next_try = time.monotonic() + delay
                            delay = min(delay * 2, self.backoff[1])
                        continue
                    seen = self._emitted
                    batch = self.spool.after(sent)
                    if not batch:
                        if acked < sent:
                            acked = self._ack(sent)
                        if closing:
                            break
                        with self._cond:
                            quiet = self._emitted == seen and self._closing_at is None and not self._cond.wait(self.idle_s)
                        if quiet:
                            try:
                                self.transport.idle()
                            except Exception as e:
                                connected = self._lost(e)
                        continue
                    for seq, t, record in batch:
                        if self._closing_at is not None and time.monotonic() - self._closing_at >= self.drain_s:
                            break
                        try:
                            self.transport.send(record, time.time() - t)
                        except Exception as e:
                            connected = self._lost(e)
                            break
                        sent = seq
                        self.stats.delivered_one(time.time() - t)
                        if sent - acked >= ACK_EVERY:
                            acked = self._ack(sent)
                except Exception as e:  # the spool's disk full, I/O error or corruption, or anything
                    self._failed(e)     # unforeseen: counted and shown, and the thread lives on
        finally:
            try:
                if acked < sent:
                    self._ack(sent)
                self.transport.close()
            except Exception:
                pass
            self.spool.close()

    def _failed(self, e: Exception):
        """A failure of the delivery thread itself (not of the peer): counted, shown in the summary,
        metrics and view, logged at most once a minute; then a pause, and delivery goes on."""
        self.stats.errors += 1
        self.stats.last_error = f"{type(e).__name__}: {e}"[:200]
        now = time.monotonic()
        if now - self._logged_at >= 60:
            self._logged_at = now
            log.error("output %s: delivery failed (%s); retrying, %d failure(s) so far", self.transport.name,
                      self.stats.last_error, self.stats.errors)
        with self._cond:
            self._cond.wait(self.backoff[0])

    def _ack(self, seq: int) -> int:
        self.spool.ack_through(seq)
        self.stats.depth_spool = self.spool.depth
        return seq

    def _lost(self, e: Exception) -> bool:
        self.stats.last_error = f"{type(e).__name__}: {e}"[:200]
        self.stats.connected = False
        self.stats.disconnects += 1
        try:
            self.transport.close()
        except Exception:
            pass
        return False
