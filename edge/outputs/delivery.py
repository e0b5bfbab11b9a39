"""Delivery of verdicts to a network output that may be down, without ever stalling inspection.

emit() only appends to memory. One thread per output delivers: straight from memory while the
transport is connected and nothing waits on disk; otherwise records go to the on-disk spool and
are delivered from there, oldest first, once the transport reconnects (exponential backoff).
Order is kept because the spool only ever holds records older than those in memory.
On close, the thread tries to deliver what is left for `drain_s`, then spools the rest for the
next start. A crash (SIGKILL, power loss) can lose the records still in memory: milliseconds' worth.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

from ..telemetry import OutputStats
from .spool import Spool

MEMORY_LIMIT = 10_000  # records held in memory while the thread is blocked in a send


class Transport(Protocol):
    name: str

    def connect(self) -> None:
        """Connect or raise (OSError, ConnectionError, TimeoutError...)."""

    def send(self, record: dict) -> None:
        """Deliver one record, acknowledged, or raise."""

    def idle(self) -> None:
        """Called about every idle_s while connected with nothing to send (heartbeats)."""

    def close(self) -> None: ...


class QueuedOutput:
    def __init__(self, transport: Transport, spool_path: Path, max_items: int, stats: OutputStats,
                 idle_s: float = 1.0, backoff: tuple[float, float] = (0.2, 10.0), drain_s: float = 3.0):
        self.transport, self.spool_path, self.max_items, self.stats = transport, spool_path, max_items, stats
        self.idle_s, self.backoff, self.drain_s = idle_s, backoff, drain_s
        self._mem: deque = deque()
        self._cond = threading.Condition()
        self._closing_at: float | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"output-{transport.name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    # -- called by the pipeline ---------------------------------------------------------------
    def emit(self, record: dict):
        with self._cond:
            self._mem.append((time.time(), record))
            if len(self._mem) > MEMORY_LIMIT:
                self._mem.popleft()
                self.stats.overflow += 1
            self.stats.depth_memory = len(self._mem)
            self._cond.notify()

    def close(self):
        with self._cond:
            self._closing_at = time.monotonic()
            self._cond.notify()
        self._thread.join(self.drain_s + 10)

    # -- delivery thread ------------------------------------------------------------------------
    def _spill(self, spool: Spool):
        with self._cond:
            items = list(self._mem)
            self._mem.clear()
            self.stats.depth_memory = 0
        self.stats.overflow += spool.extend(items)
        self.stats.depth_spool = spool.depth

    def _run(self):
        spool = Spool(self.spool_path, self.max_items)
        self.stats.depth_spool = spool.depth
        self._ready.set()
        connected = False
        delay, next_try = self.backoff[0], 0.0
        try:
            while True:
                closing = self._closing_at is not None
                if closing and time.monotonic() - self._closing_at > self.drain_s:
                    break
                if not connected:
                    self._spill(spool)
                    if closing and not spool.depth:
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
                if spool.depth:  # the spool only ever holds records older than memory's
                    seq, t, record = spool.peek()
                else:
                    with self._cond:
                        if not self._mem and not closing:
                            self._cond.wait(self.idle_s)
                        head = self._mem[0] if self._mem else None
                    if head is None:
                        if closing:
                            break
                        try:
                            self.transport.idle()
                        except Exception as e:
                            connected = self._lost(e)
                        continue
                    seq, (t, record) = None, head  # None: the record is memory's head
                try:
                    self.transport.send(record)
                except Exception as e:
                    connected = self._lost(e)
                    continue
                if seq is None:
                    with self._cond:
                        self._mem.popleft()
                        self.stats.depth_memory = len(self._mem)
                else:
                    spool.delete(seq)
                    self.stats.depth_spool = spool.depth
                self.stats.delivered_one(time.time() - t)
        finally:
            self._spill(spool)
            try:
                self.transport.close()
            except Exception:
                pass
            spool.close()

    def _lost(self, e: Exception) -> bool:
        self.stats.last_error = f"{type(e).__name__}: {e}"[:200]
        self.stats.connected = False
        self.stats.disconnects += 1
        try:
            self.transport.close()
        except Exception:
            pass
        return False
