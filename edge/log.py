"""One logging path. Modules log through `logging.getLogger(__name__)` (all under "edge"); the
commands install one handler with `setup(prog)` that writes `prog: message` lines to stderr. When
stderr is systemd's journal stream, each line starts with its syslog priority (`<3>` error,
`<4>` warning, `<6>` info), so journald keeps the priorities (`journalctl -p warning`).
Reports (the run summary, JSON verdict lines) are output, not log records, and stay prints."""

from __future__ import annotations

import logging
import os
import sys

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd set up for the journal (JOURNAL_STREAM=dev:inode)."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in want.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):  # unset, or a replaced sys.stderr without a descriptor
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class StderrHandler(logging.Handler):
    """`prog: message` on whatever sys.stderr is at the time of the record (tests and redirections
    replace it), flushed at once so a watchdog kill never loses the last line."""

    def __init__(self, prog: str):
        super().__init__()
        self.prog = prog
        self.journal = stderr_is_journal()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{self.prog}: {record.getMessage()}"
            if record.exc_info and os.environ.get("EDGE_DEBUG"):
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if self.journal:
                prio = PRIORITY.get(record.levelno, 6)
                text = "\n".join(f"<{prio}>{line}" for line in text.splitlines())
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def setup(prog: str, level: int = logging.INFO) -> None:
    """Route the "edge" loggers to stderr under `prog`'s name; called once by each command (again
    replaces the handler, so one process never prints a line twice)."""
    root = logging.getLogger("edge")
    for h in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(h)
    root.addHandler(StderrHandler(prog))
    root.setLevel(level)
    root.propagate = False
