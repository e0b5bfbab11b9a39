"""The camera output line across a camera reconnect. TLSimu has no line nodes (a real line is
refused: test_operations.py), so the camera is a double that is as strict as GenICam where it
matters: a reconnect destroys the old handle (its node map raises on every access) and the new
camera starts with its line settings at their defaults."""


import pytest
from conftest import wait_until

from edge.config import CameraLine
from edge.outputs.camera_line import CameraLineOutput


class Node:
    def __init__(self, owner, name, value):
        self._owner, self._name, self._value = owner, name, value

    @property
    def value(self):
        self._owner.check()
        return self._value

    @value.setter
    def value(self, v):
        self._owner.check()
        if self._owner.fail_writes:
            self._owner.fail_writes -= 1
            raise RuntimeError("GenICam: AccessException (device busy)")
        self._value = v
        self._owner.writes.append((self._name, v))


class NodeMap:
    NAMES = ("LineSelector", "LineMode", "LineSource", "UserOutputSelector", "UserOutputValue")

    def __init__(self):
        self.destroyed, self.fail_writes, self.writes = False, 0, []
        for n in self.NAMES:
            object.__setattr__(self, n, Node(self, n, "Input" if n == "LineMode" else None))

    def check(self):
        if self.destroyed:
            raise RuntimeError("GenICam: the device handle was destroyed")

    def has_node(self, name):
        return name in self.NAMES


class Camera:
    """The source's node_map property, as edge.sources.genicam has it."""

    def __init__(self):
        self.node_map = NodeMap()

    def reconnect(self):
        self.node_map.destroyed = True
        self.node_map = NodeMap()


def test_after_a_reconnect_the_line_is_set_up_again_and_pulses_on_the_new_camera():
    cam = Camera()
    out = CameraLineOutput(CameraLine(enabled=True, pulse_ms=20), cam, "station.yaml")
    out.emit({"verdict": "NG"})
    assert wait_until(lambda: cam.node_map.UserOutputValue.value is False and len(cam.node_map.writes) >= 7)
    cam.reconnect()
    out.emit({"verdict": "NG"})  # before: raised from the destroyed handle's node map
    nm = cam.node_map
    assert nm.LineMode.value == "Output" and nm.LineSelector.value == "Line1"
    assert ("UserOutputValue", True) in nm.writes
    assert wait_until(lambda: nm.UserOutputValue.value is False)
    out.close()


def test_a_failed_pulse_end_is_retried_so_the_reject_line_does_not_stay_on():
    cam = Camera()
    out = CameraLineOutput(CameraLine(enabled=True, pulse_ms=10), cam, "station.yaml")
    out.emit({"verdict": "NG"})
    cam.node_map.fail_writes = 3  # the next three writes (the pulse's end) fail
    assert wait_until(lambda: cam.node_map.UserOutputValue.value is False and out.end_failures == 3)
    out.close()


def test_ok_verdicts_do_not_pulse_and_a_missing_camera_is_an_error_the_pipeline_counts():
    cam = Camera()
    out = CameraLineOutput(CameraLine(enabled=True), cam, "station.yaml")
    before = len(cam.node_map.writes)
    out.emit({"verdict": "OK"})
    assert len(cam.node_map.writes) == before
    cam.node_map = None  # reconnecting
    with pytest.raises(ConnectionError):
        out.emit({"verdict": "NG"})
    out.close()
