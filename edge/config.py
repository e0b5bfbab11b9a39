"""Station configuration (YAML) -> typed, validated config. docs/CONFIG.md documents every key.

Errors exit with code 2 and one line: `<file>: <key.path>: expected ..., got ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from .errors import InputError
from .recipe import Decision, Detect, Preprocess
from .schema import field, load, rng
from .sources import open_source

RECIPE_SECTIONS = {"preprocess": Preprocess, "detect": Detect, "decision": Decision}


def _port(v):
    return None if 0 <= v <= 65535 else "a TCP port 0..65535"


@dataclass(frozen=True)
class Camera:
    source: str = field(doc="frame source URI: file://... (replay) or genicam://... (camera)")
    outputs: "Outputs | None" = field(None, doc="outputs for this camera, replacing the station-level outputs section")
    queue: int = field(4, check=rng(1, 1024), doc="frames buffered between acquisition and inference")
    drop_when_full: bool | None = field(
        None, doc="drop new frames (counted, reason queue_full) when the queue is full; "
                  "null = yes for cameras, no (wait) for replay")
    reconnect_attempts: int = field(5, check=rng(0, 1000),
                                    doc="a lost camera is reopened this many times (backoff doubling) before "
                                        "edge-run exits with code 1 for systemd to restart it")
    reconnect_backoff_s: float = field(0.5, check=rng(0.01, 60), doc="first wait before reopening; doubles, at most 30 s")
    start_timeout_s: float = field(120.0, check=rng(0, 86_400),
                                   doc="at start, a camera that is not there yet (a PoE camera booting with the "
                                       "plant) is tried again with backoff for this long, systemd told to wait; "
                                       "0 = one attempt")


@dataclass(frozen=True)
class Model:
    path: str | None = field(None, doc="ONNX model, or a TensorRT engine (.plan/.engine) with its <engine>.json "
                                       "sidecar from build-engine (relative to this file); null = the packaged demo model")
    backend: Literal["auto", "onnxruntime", "openvino", "tensorrt"] = field(
        "auto", doc="runner; auto picks by file type: an .onnx model runs on the CPU with OpenVINO where the "
                    "openvino extra is installed (bf16 where the CPU computes it), else with ONNX Runtime; "
                    "an engine runs with TensorRT on the GPU")
    precision: Literal["auto", "fp32", "bf16"] = field(
        "auto", doc="OpenVINO's compute precision; auto = bf16 on a CPU with AMX or AVX-512 BF16, else fp32. "
                    "Other backends run the precision their model or engine was built in (auto only)")
    threads: int = field(0, check=rng(0, 256), doc="CPU inference threads (ONNX Runtime, OpenVINO); 0 = one per core")
    cuda: Literal["auto", "cuda-python", "pycuda"] = field(
        "auto", doc="device-memory layer of the TensorRT runner; auto takes cuda-python, then pycuda")


@dataclass(frozen=True)
class JsonLines:
    stdout: bool = field(True, doc="one JSON line per frame on standard output")
    path: str | None = field(None, doc="also append the lines to this file (relative to this file); reopened when "
                                       "it is moved or removed (logrotate)")
    max_mb: float = field(100.0, check=rng(0.01, 1_000_000), doc="the file is rotated to <path>.1 (the previous "
                                                                  ".1 removed) when it grows past this: it shares "
                                                                  "its disk with the spool")


def _topic_level(v):
    return "a topic level without '+', '#' or NUL" if any(c in v for c in "+#\0") else None


@dataclass(frozen=True)
class MqttTls:
    ca_file: str | None = field(None, doc="CA certificate (PEM) the broker's certificate is checked against; "
                                          "null = the system's CAs")
    cert_file: str | None = field(None, doc="client certificate (PEM), for brokers that authenticate clients by it")
    key_file: str | None = field(None, doc="the client certificate's private key (PEM)")


@dataclass(frozen=True)
class Mqtt:
    enabled: bool = field(False, doc="publish every verdict to an MQTT broker")
    host: str = field("127.0.0.1", doc="broker address")
    port: int = field(1883, check=_port, doc="broker port")
    topic_prefix: str = field("edge", check=_topic_level,
                              doc="topics are <prefix>/<station>/<camera>/verdict and .../status")
    qos: int = field(1, check=lambda v: None if v in (1, 2) else "1 or 2 (delivery is at least once; QoS 0 can "
                                                               "lose verdicts)", doc="MQTT QoS of verdicts (1: at least once)")
    client_id: str | None = field(None, doc="null = edge-<station>-<camera>")
    username: str | None = field(None, doc="broker user name")
    password_env: str | None = field(None, doc="name of the environment variable holding the password (must be set)")
    tls: MqttTls | None = field(None, doc="connect over TLS (port 8883 as a rule); null = plain TCP")
    keepalive: int = field(30, check=rng(5, 3600), doc="seconds between MQTT keep-alives")
    timeout_s: float = field(5.0, check=rng(0.1, 120), doc="wait for CONNACK / PUBACK before treating the broker as down")

    def validate(self, where, prefix):
        import os
        if not self.enabled:
            return
        if self.password_env is not None and self.password_env not in os.environ:
            raise InputError(where, f"{prefix}.password_env", f"expected the environment variable {self.password_env} "
                                                              "to be set (systemd: in the EnvironmentFile), it is not")
        for key in ("ca_file", "cert_file", "key_file"):
            name = getattr(self.tls, key) if self.tls else None
            if name is not None and not Path(name).is_file():
                raise InputError(where, f"{prefix}.tls.{key}", f"expected an existing file, not found: {name}")


@dataclass(frozen=True)
class Modbus:
    enabled: bool = field(False, doc="write every verdict to a PLC over Modbus TCP")
    host: str = field("127.0.0.1", doc="PLC address")
    port: int = field(502, check=_port, doc="PLC port")
    unit: int = field(1, check=rng(0, 255), doc="Modbus unit (device) id")
    coil: int = field(0, check=rng(0, 65535), doc="coil set to 1 for reject (NG or not inspected), 0 for OK")
    register: int = field(0, check=rng(0, 65525), doc="first of the 11 holding registers (see docs/OPERATIONS.md)")
    heartbeat_s: float = field(1.0, check=rng(0.05, 60), doc="heartbeat register period")
    timeout_s: float = field(2.0, check=rng(0.05, 60), doc="request timeout before treating the PLC as down")
    max_age_s: float = field(2.0, check=rng(0.01, 86_400), doc="a verdict older than this when it reaches the PLC "
                                                               "(after an outage) is written as late (code 4) and "
                                                               "does not touch the reject coil")


@dataclass(frozen=True)
class CameraLine:
    enabled: bool = field(False, doc="pulse the camera's digital output line (GenICam cameras only)")
    line: str = field("Line1", doc="LineSelector value of the output line")
    user_output: str = field("UserOutput1", doc="UserOutputSelector value driving that line")
    pulse_ms: float = field(20.0, check=rng(0.1, 10_000), doc="pulse width")
    on: Literal["NG", "OK"] = field("NG", doc="which verdict pulses the line")


@dataclass(frozen=True)
class Spool:
    dir: str | None = field(None, doc="where undelivered verdicts wait; null = $STATE_DIRECTORY/spool "
                                      "(systemd) or ~/.local/state/edge-inspect/spool")
    max_items: int = field(100_000, check=rng(10, 100_000_000), doc="per output; the oldest are dropped beyond it")
    fsync_s: float = field(1.0, check=rng(0, 60), doc="every verdict is committed to the spool before delivery "
                           "(survives kill -9); a power cut can lose the last fsync_s seconds; 0 = fsync "
                           "every verdict (slower)")
    drain_s: float = field(3.0, check=rng(0, 3600), doc="at stop, how long to keep delivering before leaving the "
                           "rest in the spool for the next start (keep below systemd's TimeoutStopSec)")


@dataclass(frozen=True)
class Outputs:
    jsonl: JsonLines = field(factory=JsonLines)
    mqtt: Mqtt = field(factory=Mqtt)
    modbus: Modbus = field(factory=Modbus)
    camera_line: CameraLine = field(factory=CameraLine)
    spool: Spool = field(factory=Spool)


@dataclass(frozen=True)
class Prometheus:
    enabled: bool = field(False, doc="serve metrics over HTTP for Prometheus")
    host: str = field("127.0.0.1", doc="address to bind; 0.0.0.0 exposes it to the plant network")
    port: int = field(9108, check=_port, doc="TCP port (0 picks a free one)")


@dataclass(frozen=True)
class Telemetry:
    window: int = field(2048, check=rng(16, 1_000_000), doc="frames in the rolling latency window")
    progress_s: float = field(10.0, check=rng(0), doc="seconds between progress lines on stderr; 0 = none")
    summary: bool = field(True, doc="print a latency table on stderr when the run ends")
    ng_alarm: float = field(0.0, check=rng(0, 1), doc="warn when more than this share of the last ng_window "
                                                     "verdicts is NG (a drifted camera or light, a process fault, "
                                                     "or a threshold calibrated on too few good parts); the warning "
                                                     "clears below three quarters of it; 0 = off")
    ng_window: int = field(200, check=rng(2, 1_000_000), doc="verdicts the NG share is taken over")
    prometheus: Prometheus = field(factory=Prometheus)


@dataclass(frozen=True)
class ArchiveCfg:
    enabled: bool = field(False, doc="keep NG frames with a heat-map overlay and their verdict")
    dir: str | None = field(None, doc="null = $STATE_DIRECTORY/archive (systemd) or ~/.local/state/edge-inspect/archive")
    max_mb: float = field(1024.0, check=rng(1, 10_000_000), doc="size cap; the oldest parts are removed first")
    queue: int = field(16, check=rng(1, 1024), doc="NG frames waiting for the writer; beyond it they are counted, not kept")


@dataclass(frozen=True)
class View:
    enabled: bool = field(False, doc="serve the live view page (pip install 'edge-inspect[view]')")
    host: str = field("127.0.0.1", doc="address to bind; any address but 127.0.0.1/::1/localhost needs token_env")
    port: int = field(8088, check=_port, doc="TCP port (0 picks a free one)")
    token_env: str | None = field(None, doc="environment variable holding the access token; required for a "
                                            "non-local host; open http://<host>:<port>/?token=<token>")
    max_fps: float = field(5.0, check=rng(0.1, 60), doc="OK frames per second the view takes at most while a page is "
                                                        "open, and NG parts per second at most (copies off the inspection "
                                                        "thread; the rest are skipped, never waited for)")
    ng_parts: int = field(8, check=rng(0, 64), doc="last NG parts shown as thumbnails")


@dataclass(frozen=True)
class StationFile:
    station: str = field("station", doc="station name, carried in every verdict")
    cameras: dict[str, Camera] = field(factory=dict, doc="cameras by name; --camera picks one")
    model: Model = field(factory=Model)
    preprocess: dict = field(factory=dict)  # validated as recipe overrides, see below
    detect: dict = field(factory=dict)
    decision: dict = field(factory=dict)
    outputs: Outputs = field(factory=Outputs)
    archive: ArchiveCfg = field(factory=ArchiveCfg)
    telemetry: Telemetry = field(factory=Telemetry)
    view: View = field(factory=View)


@dataclass
class StationConfig:
    """A loaded config: typed sections plus the raw recipe overrides and where it came from."""
    file: StationFile
    path: str
    base_dir: Path
    overrides: dict

    def outputs_for(self, name: str) -> "Outputs":
        return self.camera(name).outputs or self.file.outputs

    def camera(self, name: str) -> Camera:
        if name not in self.file.cameras:
            known = ", ".join(sorted(self.file.cameras)) or "none"
            raise InputError(self.path, f"cameras.{name}", f"no such camera (configured: {known})")
        return self.file.cameras[name]

    def resolve(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def parse(raw, path: str, base_dir: Path) -> StationConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(path, None, f"expected a mapping of sections at the top level, got {type(raw).__name__}")
    overrides = {}
    for name, cls in RECIPE_SECTIONS.items():
        section = raw.get(name)
        if section is None:
            continue
        load(cls, section, path, name)  # checks keys, types and ranges with the right key path
        overrides[name] = section
    sf = load(StationFile, raw, path)
    for cam_name, cam in sf.cameras.items():
        open_source(cam.source, where=path, key=f"cameras.{cam_name}.source", base_dir=base_dir)
    cfg = StationConfig(sf, path, base_dir, overrides)
    if sf.model.path is not None and not cfg.resolve(sf.model.path).is_file():
        raise InputError(path, "model.path", f"model file not found: {cfg.resolve(sf.model.path)}")
    for key, outputs in [("outputs", sf.outputs)] + [(f"cameras.{n}.outputs", c.outputs) for n, c in sf.cameras.items()]:
        if outputs is not None and outputs.mqtt.enabled:  # station and camera names are MQTT topic levels
            for name, value in [("station", sf.station)] + [(f"cameras.{n}", n) for n in sf.cameras]:
                if _topic_level(value):
                    raise InputError(path, name, f"expected a name without '+', '#' or NUL (an MQTT topic level), "
                                                 f"got {value!r}")
        if outputs is not None and outputs.jsonl.path is not None and not cfg.resolve(outputs.jsonl.path).parent.is_dir():
            raise InputError(path, f"{key}.jsonl.path", f"folder does not exist: {cfg.resolve(outputs.jsonl.path).parent}")
    return cfg


def load_file(path: str | Path) -> StationConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(str(p), None, "config file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise InputError(str(p), None, f"cannot read the config ({type(e).__name__})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(str(p), None, f"not valid YAML ({at}{getattr(e, 'problem', None) or 'parse error'})") from None
    return parse(raw, str(p), p.resolve().parent)
