"""Errors a station engineer can act on: one line, naming the file, the key and what was expected."""


class InputError(Exception):
    """Bad input from the user (config, model, image, URI). The CLI prints it on one line, exit 2."""

    def __init__(self, where: str, key: str | None, message: str):
        self.where, self.key, self.message = where, key, message
        super().__init__(self.line())

    def line(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.where}:{key} {self.message}"


class SourceError(Exception):
    """A frame source failed at run time (camera gone, unreadable file)."""


class CameraAbsent(InputError):
    """The configured camera is not (yet) listed by its producer: a typo, or a PoE camera still
    booting with the plant. The station waits for it at start before this ends the run (exit 2)."""


def run_cli(prog: str, fn, handlers=()) -> int:
    """The commands' error contract: InputError -> one line `<prog>: error: ...`, exit 2; any other
    failure -> one line, exit 1, the traceback only with EDGE_DEBUG=1. `handlers` are
    (exception type, callback returning the exit code) pairs tried first (e.g. KeyboardInterrupt)."""
    import logging
    import os

    from .log import setup

    setup(prog)  # the one handler: `<prog>: ...` lines on stderr, journald priorities under systemd
    log = logging.getLogger("edge.cli")
    try:
        return fn()
    except InputError as e:
        log.error("error: %s", e.line())
        return 2
    except BaseException as e:
        for kind, handle in handlers:
            if isinstance(e, kind):
                return handle(e)
        if not isinstance(e, Exception) or os.environ.get("EDGE_DEBUG"):
            raise
        log.error("failed: %s: %s (set EDGE_DEBUG=1 for the traceback)", type(e).__name__, e)
        return 1
