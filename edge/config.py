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
    queue: int = field(4, check=rng(1, 1024), doc="frames buffered between acquisition and inference")
    drop_when_full: bool | None = field(
        None, doc="drop new frames (counted, reason queue_full) when the queue is full; "
                  "null = yes for cameras, no (wait) for replay")


@dataclass(frozen=True)
class Model:
    path: str | None = field(None, doc="ONNX model (relative to this file); null = the packaged demo model")
    backend: Literal["auto", "onnxruntime"] = field("auto", doc="runner; auto picks by file type")
    threads: int = field(0, check=rng(0, 256), doc="ONNX Runtime intra-op threads; 0 = one per core")


@dataclass(frozen=True)
class JsonLines:
    stdout: bool = field(True, doc="one JSON line per frame on standard output")
    path: str | None = field(None, doc="also append the lines to this file (relative to this file)")


@dataclass(frozen=True)
class Outputs:
    jsonl: JsonLines = field(factory=JsonLines)


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
    prometheus: Prometheus = field(factory=Prometheus)


@dataclass(frozen=True)
class StationFile:
    station: str = field("station", doc="station name, carried in every verdict")
    cameras: dict[str, Camera] = field(factory=dict, doc="cameras by name; --camera picks one")
    model: Model = field(factory=Model)
    preprocess: dict = field(factory=dict)  # validated as recipe overrides, see below
    detect: dict = field(factory=dict)
    decision: dict = field(factory=dict)
    outputs: Outputs = field(factory=Outputs)
    telemetry: Telemetry = field(factory=Telemetry)


@dataclass
class StationConfig:
    """A loaded config: typed sections plus the raw recipe overrides and where it came from."""
    file: StationFile
    path: str
    base_dir: Path
    overrides: dict

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
    if sf.outputs.jsonl.path is not None and not cfg.resolve(sf.outputs.jsonl.path).parent.is_dir():
        raise InputError(path, "outputs.jsonl.path", f"folder does not exist: {cfg.resolve(sf.outputs.jsonl.path).parent}")
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
