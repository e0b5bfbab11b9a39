"""Where verdicts go. Every output has emit(record: dict) and close().

JSON lines (stdout, file) are written directly. MQTT and Modbus go through QueuedOutput, which
never blocks inspection and keeps verdicts on disk while the peer is down. The camera line is
pulsed directly (a late pulse would mark the wrong part).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from .jsonl import JsonLinesOutput


class Output(Protocol):
    """What the pipeline hands every record to (JSON lines, the camera line, a queued network output)."""

    def emit(self, record: dict) -> None: ...

    def close(self) -> None: ...


def default_spool_dir() -> Path:
    state = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    if state:
        return Path(state.split(":")[0]) / "spool"
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "edge-inspect" / "spool"


def _kind(out) -> str:
    """Which config section an output was built from."""
    transport = getattr(out, "transport", None)
    if transport is not None:
        return transport.name  # "mqtt", "modbus"
    return {"CameraLineOutput": "camera_line", "JsonLinesOutput": "jsonl"}.get(type(out).__name__, "")


def build_outputs(o, *, station: str, camera: str, telemetry, source, resolve, where: str, stdout: bool = True,
                  running: tuple | None = None) -> list:
    """Outputs for one camera from a config.Outputs section. `running` = (the Outputs section and
    the outputs built from it): an output whose section (and, for queued ones, the spool section)
    did not change is kept as it is, connection and all, instead of being rebuilt (a reload)."""
    from .delivery import QueuedOutput

    old_cfg, old = running if running is not None else (None, [])
    old_by_kind = {_kind(out): out for out in old}

    def kept(kind: str, queued_output: bool = False):
        if old_cfg is None or kind not in old_by_kind or getattr(old_cfg, kind) != getattr(o, kind):
            return None
        if queued_output and old_cfg.spool != o.spool:
            return None
        return old_by_kind[kind]

    for enabled, module, extra, key in ((o.mqtt.enabled, "paho.mqtt.client", "mqtt", "mqtt"),
                                        (o.modbus.enabled, "pymodbus.client", "modbus", "modbus")):
        if enabled:
            try:
                __import__(module)
            except ImportError:
                from ..errors import InputError
                raise InputError(where, f"outputs.{key}", f"needs {module.split('.')[0]}: pip install 'edge-inspect[{extra}]'") from None
    # order: the camera line first (a late pulse marks the wrong part), then the spools (a verdict
    # printed or written to the file is already safe on disk), then JSON lines
    import sqlite3

    from ..errors import InputError
    from .spool import SpoolBusy

    outputs: list[Output] = []
    spool_dir = resolve(o.spool.dir) if o.spool.dir else default_spool_dir()
    queued = dict(max_items=o.spool.max_items, fsync_s=o.spool.fsync_s, drain_s=o.spool.drain_s)
    key = "outputs.camera_line"
    new: list = []  # built here (closed again if a later one fails); the kept ones stay with their owner

    def add(out):
        if out not in old:
            new.append(out)
        outputs.append(out)
    try:  # a file or spool that cannot be opened is bad input: named, and a reload keeps the running outputs
        if o.camera_line.enabled:
            from .camera_line import CameraLineOutput
            add(kept("camera_line") or CameraLineOutput(o.camera_line, source, where))
        key = "outputs.spool.dir"
        if o.mqtt.enabled:
            from .mqtt import MqttTransport
            add(kept("mqtt", True) or QueuedOutput(
                MqttTransport(o.mqtt, station, camera), spool_dir / f"{station}-{camera}-mqtt.sqlite",
                stats=telemetry.output("mqtt"), idle_s=1.0, **queued))
        if o.modbus.enabled:
            from .modbus import ModbusTransport
            add(kept("modbus", True) or QueuedOutput(
                ModbusTransport(o.modbus), spool_dir / f"{station}-{camera}-modbus.sqlite",
                stats=telemetry.output("modbus"), idle_s=o.modbus.heartbeat_s, **queued))
        key = "outputs.jsonl.path"
        add(kept("jsonl") or JsonLinesOutput(stdout=o.jsonl.stdout and stdout,
                                             path=resolve(o.jsonl.path) if o.jsonl.path else None,
                                             max_bytes=int(o.jsonl.max_mb * (1 << 20))))
    except SpoolBusy as e:
        close_all(new)
        raise InputError(where, "outputs.spool.dir", f"expected a spool no other process uses: {e}") from None
    except (OSError, sqlite3.Error) as e:
        close_all(new)
        raise InputError(where, key, f"expected a place it can write, got {type(e).__name__}: "
                                     f"{getattr(e, 'strerror', None) or e}") from None
    except BaseException:
        close_all(new)
        raise
    return outputs


def close_all(outputs: list, wait: bool = True):
    """wait=False (a reload): queued outputs stop without draining; their spool keeps the rest."""
    from .delivery import QueuedOutput

    for out in outputs:
        try:
            out.close(wait) if isinstance(out, QueuedOutput) else out.close()
        except Exception:
            pass


__all__ = ["JsonLinesOutput", "build_outputs", "close_all", "default_spool_dir"]
