"""One JSON line per frame to stdout and/or a file."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class JsonLinesOutput:
    CHECK_S = 1.0  # how often the file is looked at (moved away? too large?): a stat, not per line

    def __init__(self, stdout: bool = True, path: Path | None = None, stream=None, max_bytes: int = 100 << 20):
        """`stream` replaces stdout (any text stream with write/flush)."""
        self._stdout = stream if stream is not None else (sys.stdout if stdout else None)
        self.path, self.max_bytes = path, max_bytes
        self._file = None
        self._checked = 0.0
        if path is not None:
            self._open()
        self.failed = 0  # lines the file did not take (disk full, ...); inspection goes on
        self._lock = threading.Lock()  # drops are reported from the acquisition thread

    def emit(self, record: dict):
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._stdout is not None:
                try:
                    self._stdout.write(line)
                    self._stdout.flush()
                except (BrokenPipeError, ValueError):  # the reader went away (`edge-run | head`): the file goes on
                    self._stdout_gone()
            if self._file is not None:
                try:
                    now = time.monotonic()
                    if now - self._checked >= self.CHECK_S:
                        self._checked = now
                        self._check_file()
                    self._file.write(line)
                except OSError as e:
                    self.failed += 1
                    if self.failed == 1 or self.failed % 1000 == 0:
                        log.error("cannot write %s: %s (%d lines lost so far)", self.path, e.strerror, self.failed)

    def _open(self):
        self._file = open(self.path, "a", buffering=1)
        self._inode = os.fstat(self._file.fileno()).st_ino

    def _check_file(self):
        """Reopen the file when logrotate (or an operator) moved or removed it; rotate it to .1
        when it outgrew max_bytes."""
        try:
            st = os.stat(self.path)
            moved = st.st_ino != self._inode
        except FileNotFoundError:
            moved, st = True, None
        if not moved and st is not None and st.st_size > self.max_bytes:
            os.replace(self.path, f"{self.path}.1")
            moved = True
        if moved:
            self._file.close()
            self._open()

    def _stdout_gone(self):
        stream, self._stdout = self._stdout, None
        log.warning("stdout was closed; verdicts go on to the other outputs")
        if stream is sys.stdout:  # so that the interpreter's flush at exit does not fail on it again
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass

    def close(self):
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
