"""One JSON line per frame to stdout and/or a file."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path


class JsonLinesOutput:
    def __init__(self, stdout: bool = True, path: Path | None = None):
        self._stdout = sys.stdout if stdout else None
        self._file = open(path, "a", buffering=1) if path is not None else None
        self._lock = threading.Lock()  # drops are reported from the acquisition thread

    def emit(self, record: dict):
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._stdout is not None:
                self._stdout.write(line)
                self._stdout.flush()
            if self._file is not None:
                self._file.write(line)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
