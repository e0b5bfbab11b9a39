"""The write-ahead queue of one network output: every verdict is committed here (SQLite, WAL)
before its delivery is tried, and deleted once the peer acknowledged it.

Durability (the fsync policy):
- `kill -9`, a crash, an OOM kill: nothing committed is lost. A commit hands the record to the
  kernel (WAL write) before emit() returns, and the kernel keeps it whatever happens to the process.
- power cut: with fsync_s > 0 (default 1 s) a sync thread fsyncs the WAL and checkpoints it every
  fsync_s, so at most the last fsync_s of verdicts can be lost. fsync_s = 0 makes every commit
  fsync (SQLite synchronous=FULL): nothing is lost, at a few hundred microseconds per verdict on
  the emitting thread (measured 37 us vs 240 us per record here; see docs/RELIABILITY.md).
- delivery is at least once: a record acknowledged by the peer but not yet deleted when the
  process dies is sent again after the restart (acks are deleted in small batches).

Bounded: beyond max_items the oldest records are dropped and counted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

WAL_LIMIT = 4 << 20  # bytes the WAL is truncated back to when it is reset


class SpoolBusy(OSError):
    """Another process (a second edge-run for the same camera) holds the spool."""


_held: dict[Path, list] = {}  # spool path -> [lock file descriptor, Spool objects of this process using it]
_held_lock = threading.Lock()


def _claim(path: Path):
    """An exclusive lock on <spool>.lock for this process: two edge-runs on one spool would both
    deliver and delete each other's records. Within the process the lock is shared: a reload's new
    output opens the spool while the old one is still stopping."""
    import fcntl
    key = path.resolve()
    with _held_lock:
        if key in _held:
            _held[key][1] += 1
            return
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolBusy(f"{path} is in use by another process (a second edge-run for this camera?)") from None
        _held[key] = [fd, 1]


def _release(path: Path):
    key = path.resolve()
    with _held_lock:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            os.close(entry[0])  # closing the descriptor drops the lock
            del _held[key]


class Spool:
    def __init__(self, path: Path, max_items: int, fsync_s: float = 1.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_items, self.fsync_s = path, max_items, fsync_s
        self._lock = threading.Lock()
        _claim(path)
        self.moved_aside: Path | None = None  # where a corrupt spool found at start was put
        try:
            try:
                self._open_db()
            except sqlite3.DatabaseError as e:  # not a database, or a damaged one: keep it for a look, start anew
                if isinstance(e, sqlite3.OperationalError) and "malformed" not in str(e):
                    raise  # locked, read-only, disk full: not corruption
                self.moved_aside = self._move_aside()
                self._open_db()
        except BaseException:
            _release(path)
            raise
        self._dirty = False
        self._ckpt = None  # the sync thread's connection
        self._stop = threading.Event()
        self._syncer = None
        if fsync_s > 0:
            self._syncer = threading.Thread(target=self._sync_loop, name=f"spool-sync-{path.stem}", daemon=True)
            self._syncer.start()

    def _open_db(self):
        self.db = self._connect()
        self.db.execute("CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, payload TEXT)")
        self.depth = self.db.execute("SELECT COUNT(*) FROM q").fetchone()[0]

    def _move_aside(self) -> Path:
        import time
        try:
            self.db.close()
        except (AttributeError, sqlite3.Error):
            pass
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return aside

    def _connect(self) -> sqlite3.Connection:
        # one connection per thread that uses it; timeout: wait out another connection's short write
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'NORMAL' if self.fsync_s > 0 else 'FULL'}")
        # checkpoints (each an fsync) run on the sync thread, not on the emitting thread's commits
        db.execute(f"PRAGMA wal_autocheckpoint={0 if self.fsync_s > 0 else 1000}")
        # the WAL file keeps its largest size after a reset unless limited: a checkpoint that lagged
        # once (a 2-hour soak: 40 MB) would hold that disk for good
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        return db

    # -- emitting thread -------------------------------------------------------------------
    def append(self, t: float, record: dict) -> int:
        """Commit one record; returns how many of the oldest were dropped to stay bounded.
        Raises sqlite3.Error (disk full, read-only) for the caller to hold the record."""
        payload = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self.db.execute("INSERT INTO q (t, payload) VALUES (?, ?)", (t, payload))
            self.depth += 1
            self._dirty = True
            dropped = max(0, self.depth - self.max_items)
            if dropped:
                cur = self.db.execute("DELETE FROM q WHERE seq IN (SELECT seq FROM q ORDER BY seq LIMIT ?)", (dropped,))
                self.depth -= cur.rowcount
            return dropped

    # -- delivery thread ---------------------------------------------------------------------
    def recount(self):
        with self._lock:
            self.depth = self.db.execute("SELECT COUNT(*) FROM q").fetchone()[0]

    def after(self, seq: int, limit: int = 256) -> list[tuple[int, float, dict]]:
        """Up to `limit` records newer than seq, oldest first, as (seq, t, record)."""
        with self._lock:
            rows = self.db.execute("SELECT seq, t, payload FROM q WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (seq, limit)).fetchall()
        return [(s, t, json.loads(p)) for s, t, p in rows]

    def ack_through(self, seq: int):
        """Delete every record up to seq (delivered)."""
        with self._lock:
            cur = self.db.execute("DELETE FROM q WHERE seq <= ?", (seq,))
            self.depth -= cur.rowcount
            self._dirty = True  # so the WAL gets checkpointed

    # -- durability ----------------------------------------------------------------------------
    def sync(self):
        """fsync what is committed, then fold the WAL into the database so it stays small. Runs on
        its own connection and outside the lock: emit() never waits for a disk flush."""
        if not self._dirty:
            return
        self._dirty = False
        wal = Path(f"{self.path}-wal")
        if wal.exists():
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)  # the kernel flushes the file's dirty pages, whichever descriptor wrote them
            finally:
                os.close(fd)
        if self._ckpt is None:
            self._ckpt = self._connect()
        self._ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks the writer

    def _sync_loop(self):
        while not self._stop.wait(self.fsync_s):
            try:
                self.sync()
            except (sqlite3.Error, OSError):
                pass  # the next commit or sync reports it; the data stays committed either way

    def close(self):
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(5)
        try:
            self.sync()
        except (sqlite3.Error, OSError):
            pass
        if self._ckpt is not None:
            self._ckpt.close()
        with self._lock:
            self.db.close()
        _release(self.path)
