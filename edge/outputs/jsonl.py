"""One JSON line per frame to stdout and/or a file."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path


class JsonLinesOutput:
    def __init__(self, stdout: bool = True, path: Path | None = None, stream=None):
        """`stream` replaces stdout (any text stream with write/flush)."""
        self._stdout = stream if stream is not None else (sys.stdout if stdout else None)
        self.path = path
        self._file = open(path, "a", buffering=1) if path is not None else None
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
                    self._file.write(line)
                except OSError as e:
                    self.failed += 1
                    if self.failed == 1 or self.failed % 1000 == 0:
                        print(f"edge-run: cannot write {self.path}: {e.strerror} ({self.failed} lines lost so far)",
                              file=sys.stderr, flush=True)

    def _stdout_gone(self):
        stream, self._stdout = self._stdout, None
        print("edge-run: stdout was closed; verdicts go on to the other outputs", file=sys.stderr, flush=True)
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
