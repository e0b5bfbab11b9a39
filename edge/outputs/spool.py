"""A bounded on-disk FIFO of verdict records (SQLite, WAL), used by one delivery thread.

Records wait here while their output is down and survive a restart of edge-run; the oldest are
dropped (and counted) beyond max_items.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


class Spool:
    def __init__(self, path: Path, max_items: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self.db = sqlite3.connect(str(path), isolation_level=None)  # autocommit; explicit transactions below
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, payload TEXT)")
        self.depth = self.db.execute("SELECT COUNT(*) FROM q").fetchone()[0]

    def extend(self, items) -> int:
        """Append (t, record) pairs in order; returns how many of the oldest were dropped to stay bounded."""
        rows = [(t, json.dumps(rec, separators=(",", ":"))) for t, rec in items]
        if not rows:
            return 0
        with self.db:
            self.db.executemany("INSERT INTO q (t, payload) VALUES (?, ?)", rows)
        self.depth += len(rows)
        dropped = max(0, self.depth - self.max_items)
        if dropped:
            with self.db:
                self.db.execute("DELETE FROM q WHERE seq IN (SELECT seq FROM q ORDER BY seq LIMIT ?)", (dropped,))
            self.depth -= dropped
        return dropped

    def peek(self):
        """The oldest (seq, t, record), or None."""
        row = self.db.execute("SELECT seq, t, payload FROM q ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def delete(self, seq: int):
        self.db.execute("DELETE FROM q WHERE seq = ?", (seq,))
        self.depth -= 1

    def close(self):
        self.db.close()
