"""The camera's own digital output line (GenICam SFNC), pulsed for each NG (or OK) verdict.

Not queued: a pulse is only meaningful for the part in front of the camera now. Needs the nodes
LineSelector, LineMode, LineSource, UserOutputSelector and UserOutputValue; a camera without them
is refused at start.
"""

from __future__ import annotations

import threading

from ..errors import InputError

NODES = ("LineSelector", "LineMode", "LineSource", "UserOutputSelector", "UserOutputValue")


class CameraLineOutput:
    def __init__(self, cfg, source, where: str):
        nm = getattr(source, "node_map", None)
        if nm is None:
            raise InputError(where, "outputs.camera_line", "needs a genicam:// camera source")
        missing = [n for n in NODES if not nm.has_node(n)]
        if missing:
            raise InputError(where, "outputs.camera_line",
                             f"the camera has no {', '.join(missing)} node(s); disable outputs.camera_line")
        self.cfg, self.nm = cfg, nm
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        try:
            nm.LineSelector.value = cfg.line
            nm.LineMode.value = "Output"
            nm.LineSource.value = cfg.user_output
            nm.UserOutputSelector.value = cfg.user_output
            nm.UserOutputValue.value = False
        except Exception as e:  # genicam's own exception types
            raise InputError(where, "outputs.camera_line", f"camera rejected the line setup: {str(e).splitlines()[0]}") from None

    def _set(self, value: bool):
        with self._lock:
            self.nm.UserOutputValue.value = value

    def emit(self, record: dict):
        if record.get("verdict") != self.cfg.on:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._set(True)
        self._timer = threading.Timer(self.cfg.pulse_ms / 1000, self._set, (False,))
        self._timer.daemon = True
        self._timer.start()

    def close(self):
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._set(False)
        except Exception:
            pass
