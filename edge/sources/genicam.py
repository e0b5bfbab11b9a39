"""GenICam cameras through harvesters and a GenTL producer (.cti).

URI: genicam://<device>?cti=/path/producer.cti&trigger=off|software|hardware&...
  <device>: a serial number, a device id, a user-defined name, or index:<n> (empty = index:0)
options: cti (default: $EDGE_GENTL_CTI, else the TLSimu simulator inside the genicam wheel),
  pixel_format, width, height, offset_x, offset_y, exposure_us, trigger, trigger_source,
  timeout_ms (how long a grab waits), buffers (GenTL buffers announced)

In `software` trigger mode edge-run fires TriggerSoftware for each frame it asks for; in `hardware`
mode the camera waits for its trigger line and a grab that sees none times out.
Buffer data is converted (edge.sources.pixel_formats: mono, packed mono, RGB/BGR with or without
alpha, YUV 4:2:2, Bayer at 8/10/12 bits) into an owned array before the buffer is requeued (the
producer reuses the memory); the conversion is chosen when the camera opens, and a pixel format
without one is refused then, naming the ones the camera offers that would work.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import SplitResult, unquote

import numpy as np

from ..errors import CameraAbsent, InputError, SourceError
from .base import Frame, query_options
from .pixel_formats import converter, supported

log = logging.getLogger(__name__)

OPTIONS = {
    "cti": (str, ""), "pixel_format": (str, ""), "width": (int, 0), "height": (int, 0),
    "offset_x": (int, -1), "offset_y": (int, -1), "exposure_us": (float, 0.0),
    "trigger": (str, "off"), "trigger_source": (str, ""), "timeout_ms": (int, 1000), "buffers": (int, 0),
}
TRIGGERS = ("off", "software", "hardware")
def simulator_cti() -> str | None:
    """TLSimu.cti inside the installed genicam wheel (it needs libVirtualFG.so beside it)."""
    try:
        import genicam
    except ImportError:
        return None
    path = Path(genicam.__file__).parent / "TLSimu.cti"
    return str(path) if path.is_file() else None


def _info(info, attr: str):
    """A device-info field, None where the producer does not support it (genicam raises its own
    NotAvailableException there, which getattr's default does not catch)."""
    try:
        return getattr(info, attr)
    except Exception:
        return None


class GenICamSource:
    def __init__(self, device: str, opts: dict, where: str, key: str):
        self.device, self.opts, self.where, self.key = device, opts, where, key
        # A software-triggered camera only exposes when edge-run asks, so a full queue just delays
        # the next trigger; free-run and hardware-triggered cameras lose frames that wait.
        self.live = opts["trigger"] != "software"
        self._h = None
        self._ia = None
        self._last_id = None
        self.serial = ""

    @classmethod
    def from_uri(cls, parts: SplitResult, where: str, key: str, base_dir: Path) -> "GenICamSource":
        opts = query_options(parts.query, where, key, OPTIONS)
        if opts["trigger"] not in TRIGGERS:
            raise InputError(where, key, f"URI option trigger expected one of {', '.join(TRIGGERS)}, got '{opts['trigger']}'")
        if opts["timeout_ms"] <= 0:
            raise InputError(where, key, f"URI option timeout_ms expected > 0, got {opts['timeout_ms']}")
        cti = opts["cti"] or os.environ.get("EDGE_GENTL_CTI", "") or simulator_cti()
        if not cti:
            raise InputError(where, key, "no GenTL producer: give ?cti=/path/producer.cti (or install the camera extra)")
        cti_path = Path(cti) if Path(cti).is_absolute() else base_dir / cti
        if not cti_path.is_file():
            raise InputError(where, key, f"GenTL producer not found: {cti_path}")
        opts["cti"] = str(cti_path)
        return cls(unquote(parts.netloc + parts.path.rstrip("/")), opts, where, key)

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise InputError(self.where, self.key, "genicam:// needs the camera extra: pip install 'edge-inspect[camera]'") from None
        for name in [n for n in logging.root.manager.loggerDict if n.startswith("harvesters")] + ["harvesters"]:
            logging.getLogger(name).setLevel(logging.CRITICAL)  # failures reach the user as SourceError
        self._h = Harvester()
        self._h.add_file(self.opts["cti"], check_existence=True)
        self._h.update()
        try:
            self._ia = self._h.create(self._search_key())
            self._configure(self._ia.remote_device.node_map)
            if self.opts["buffers"]:
                self._ia.num_buffers = self.opts["buffers"]
            self._ia.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        ia, self._ia = self._ia, None
        h, self._h = self._h, None
        for step in ((ia.stop, ia.destroy) if ia is not None else ()) + ((h.reset,) if h is not None else ()):
            try:
                step()
            except Exception:  # a lost device fails its own teardown; release the rest regardless
                pass
        self._last_id = None

    def _search_key(self):
        infos = self._h.device_info_list
        if not infos:
            raise CameraAbsent(self.where, self.key, f"no camera found by the GenTL producer {self.opts['cti']}")
        dev = self.device
        if dev == "" or dev.startswith("index:"):
            try:
                index = int(dev.removeprefix("index:") or 0)
            except ValueError:
                raise InputError(self.where, self.key, f"expected index:<number>, got '{dev}'") from None
            if not 0 <= index < len(infos):
                raise InputError(self.where, self.key, f"camera index {index} out of range: {len(infos)} found")
            self.serial = infos[index].serial_number
            return index
        for attr in ("serial_number", "id_", "user_defined_name"):
            for i, info in enumerate(infos):
                if _info(info, attr) == dev:
                    self.serial = info.serial_number
                    return i
        found = ", ".join(f"{_info(d, 'serial_number')} ({_info(d, 'model')})" for d in infos)
        raise CameraAbsent(self.where, self.key, f"camera '{dev}' not found; the producer lists: {found}")

    def _set(self, nm, name: str, value):
        if not nm.has_node(name):
            raise InputError(self.where, self.key, f"the camera has no {name} node to set to {value!r}")
        try:
            getattr(nm, name).value = value
        except Exception as e:  # genicam raises its own exception types (out of range, not writable)
            raise InputError(self.where, self.key, f"camera rejected {name}={value!r}: {str(e).splitlines()[0]}") from None

    def _configure(self, nm):
        o = self.opts
        if o["pixel_format"]:
            self._set(nm, "PixelFormat", o["pixel_format"])
        for opt, node in (("width", "Width"), ("height", "Height")):
            if o[opt]:
                self._set(nm, node, o[opt])
        for opt, node in (("offset_x", "OffsetX"), ("offset_y", "OffsetY")):
            if o[opt] >= 0:
                self._set(nm, node, o[opt])
        if o["exposure_us"]:
            node = next((n for n in ("ExposureTime", "ExposureTimeAbs") if nm.has_node(n)), None)
            if node is None:
                log.warning("%s: %s: camera has no ExposureTime node; exposure_us ignored", self.where, self.key)
            else:
                self._set(nm, node, o["exposure_us"])
        if nm.has_node("TriggerMode"):
            self._set(nm, "TriggerMode", "Off" if o["trigger"] == "off" else "On")
        elif o["trigger"] != "off":
            raise InputError(self.where, self.key, "the camera has no TriggerMode node; use trigger=off")
        if o["trigger"] == "software":
            self._set(nm, "TriggerSource", "Software")
        elif o["trigger"] == "hardware":
            self._set(nm, "TriggerSource", o["trigger_source"] or "Line0")
        self.pixel_format = str(nm.PixelFormat.value) if nm.has_node("PixelFormat") else "Mono8"
        self.convert = converter(self.pixel_format)
        if self.convert is None:
            offered = self._offered(nm)
            usable = [f for f in offered if converter(f)]
            hint = (f"set pixel_format= to one the camera offers that the station converts: {', '.join(usable)}"
                    if usable else f"the camera offers {', '.join(offered) or 'no other'}; the station converts "
                                   f"{', '.join(supported())}")
            raise InputError(self.where, self.key, f"pixel format {self.pixel_format} cannot be converted; {hint}")

    @staticmethod
    def _offered(nm) -> list[str]:
        try:
            return [str(v) for v in nm.PixelFormat.symbolics]
        except Exception:  # a producer without the enumeration's entries
            return []

    def _probe(self):
        """After a timeout: is the camera still there? (waiting for a trigger is fine, a lost device is not)"""
        try:
            _ = self._ia.remote_device.node_map.Width.value  # a read the device must answer
        except Exception as e:
            raise SourceError(f"camera {self.serial or self.device} does not answer: {str(e).splitlines()[0][:160]}") from None

    @property
    def node_map(self):
        """The camera's GenICam node map while open (for the camera output line)."""
        return self._ia.remote_device.node_map if self._ia is not None else None

    # -- acquisition -------------------------------------------------------------------------
    def fire_trigger(self):
        self._ia.remote_device.node_map.TriggerSoftware.execute()

    def grab(self, timeout_s: float | None = None) -> Frame | None:
        timeout = self.opts["timeout_ms"] / 1000 if timeout_s is None else timeout_s
        t0 = time.perf_counter()
        try:
            if self._ia is None:
                raise SourceError("not open")
            if self.opts["trigger"] == "software":
                self.fire_trigger()
            buf = self._ia.try_fetch(timeout=timeout)  # fetch(timeout=) can block forever in harvesters 1.4.3
        except Exception as e:  # the producer's own exception types, or handles gone with the device
            text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise SourceError(f"camera {self.serial or self.device}: acquisition failed: {text}") from None
        t1 = time.perf_counter()
        if buf is None:
            self._probe()
            return None
        try:  # the device can go mid-buffer: reading it or requeueing it then raises like a failed fetch
            with buf:  # requeued on exit: copy first
                frame_id = int(buf.module.frame_id)
                timestamp = int(buf.timestamp)
                comp = buf.payload.components[0] if buf.payload.components else None
                # the converter chosen at open, unless this buffer says another format (a camera
                # reconfigured under us): one path either way
                conv = None if comp is None else \
                    self.convert if comp.data_format == self.convert.name else converter(comp.data_format)
                image, error = None, None
                if comp is None:
                    error = "buffer has no image component"
                elif conv is None:
                    error = f"pixel format {comp.data_format} cannot be converted"
                else:
                    try:
                        image = conv(comp.data, comp.width, comp.height)
                    except ValueError as e:  # a short or odd-sized payload
                        error = f"{conv.name} payload unreadable: {e}"
        except Exception as e:
            text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise SourceError(f"camera {self.serial or self.device}: buffer lost: {text}") from None
        gap = 0 if self._last_id is None else max(0, frame_id - self._last_id - 1)
        self._last_id = frame_id
        bits = conv.bits if image is not None and image.dtype == np.uint16 else None
        return Frame(frame_id, image, timestamp=timestamp, t_grab=time.perf_counter(), acquire_s=t1 - t0,
                     name=self.serial, error=error, meta={"camera_gap": gap} if gap else {}, bits=bits)
