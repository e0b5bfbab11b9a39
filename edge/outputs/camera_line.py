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
    """Reads the camera's node map from the source at every pulse: a reconnect replaces the camera
    handle (and resets the camera's line settings), so a node map kept from the start would belong
    to a destroyed handle."""

    END_RETRIES = 20  # the line must not stay on: a failed pulse end is retried every 50 ms

    def __init__(self, cfg, source, where: str):
        nm = getattr(source, "node_map", None)
        if nm is None:
            raise InputError(where, "outputs.camera_line", "needs a genicam:// camera source")
        missing = [n for n in NODES if not nm.has_node(n)]
        if missing:
            raise InputError(where, "outputs.camera_line",
                             f"the camera has no {', '.join(missing)} node(s); disable outputs.camera_line")
        self.cfg, self.source = cfg, source
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._configured = None  # the node map the line was set up on
        self.end_failures = 0
        try:
            self._node_map()
        except Exception as e:  # genicam's own exception types
            raise InputError(where, "outputs.camera_line", f"camera rejected the line setup: {str(e).splitlines()[0]}") from None

    def _node_map(self):
        """The current camera's node map, its line set up as an output (again after a reconnect)."""
        nm = self.source.node_map
        if nm is None:
            raise ConnectionError("the camera is not open (reconnecting)")
        if nm is not self._configured:
            nm.LineSelector.value = self.cfg.line
            nm.LineMode.value = "Output"
            nm.LineSource.value = self.cfg.user_output
            nm.UserOutputSelector.value = self.cfg.user_output
            nm.UserOutputValue.value = False
            self._configured = nm
        return nm

    def _set(self, value: bool):
        with self._lock:
            self._node_map().UserOutputValue.value = value

    def _end_pulse(self, tries: int = 0):
        try:
            self._set(False)
        except Exception:
            self.end_failures += 1
            if tries < self.END_RETRIES:
                self._timer = threading.Timer(0.05, self._end_pulse, (tries + 1,))
                self._timer.daemon = True
                self._timer.start()

    def emit(self, record: dict):
        if record.get("verdict") != self.cfg.on:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._set(True)
        self._timer = threading.Timer(self.cfg.pulse_ms / 1000, self._end_pulse)
        self._timer.daemon = True
        self._timer.start()

    def close(self):
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._set(False)
        except Exception:
            pass
