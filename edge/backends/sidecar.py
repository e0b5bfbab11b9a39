"""The engine's JSON sidecar (`<engine>.json`): what the engine was built from, for what, and how.

build-engine writes it next to the engine; edge-run reads the inspection recipe from it and
refuses an engine that does not fit the installed TensorRT or the GPU, naming the mismatch and
the command that rebuilds it. No TensorRT import here: the check runs before any runtime starts.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..gpu import GpuInfo, parse_cc
from ..recipe import Recipe
from ..schema import field, load, to_dict

FORMAT = "edge-inspect engine sidecar"
VERSION = 1
AMPERE = (8, 0)


def sidecar_path(engine: Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileRef:
    file: str
    sha256: str | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class TensorRT:
    flavour: Literal["tensorrt", "tensorrt-rtx"]
    version: str


@dataclass(frozen=True)
class Target:
    hardware_compatibility: Literal["none", "ampere+", "same-cc"] = "none"
    version_compatible: bool = False
    dla_core: int | None = None
    gpu: str | None = None
    compute_capability: str | None = None           # the build GPU's (TensorRT)
    compute_capabilities: list[str] | None = None   # what it compiled for (TensorRT-RTX; "8.6+" = and later)


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: list[int]
    dtype: str


@dataclass(frozen=True)
class Io:
    inputs: list[Tensor]
    outputs: list[Tensor]


@dataclass(frozen=True)
class Sidecar:
    format: Literal["edge-inspect engine sidecar"]
    version: Literal[1]
    engine: FileRef
    tensorrt: TensorRT
    target: Target
    precision: Literal["fp32", "fp16", "int8"]
    io: Io
    recipe: Recipe = field(factory=Recipe)
    onnx: FileRef | None = None
    layers: dict[str, dict[str, int]] = field(factory=dict, doc="layer group -> precision -> count")
    gate: Any = None    # the accuracy gate's report (free-form), or null when it was skipped
    build: Any = None   # command, key, timings, notes, calibration (free-form)

    def validate(self, where, prefix):
        if len(self.io.inputs) != 1 or not self.io.outputs:
            raise InputError(where, "io", f"expected one input and at least one output, got "
                                          f"{len(self.io.inputs)} and {len(self.io.outputs)}")

    def as_dict(self) -> dict:
        return to_dict(self)


def read_sidecar(engine: Path) -> Sidecar:
    path = sidecar_path(engine)
    if not path.is_file():
        raise InputError(str(engine), None, f"no sidecar {path.name} next to the engine: build engines with "
                                            f"build-engine, which writes it")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(str(path), None, f"expected a JSON sidecar, got {type(e).__name__}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(str(path), "format", f"expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise InputError(str(path), "version", f"expected {VERSION}, got {data.get('version')!r}")
    return load(Sidecar, data, str(path))


def rebuild_command(sidecar: Sidecar) -> str:
    argv = list((sidecar.build or {}).get("command") or [])
    if argv and "--rebuild" not in argv:
        argv.append("--rebuild")  # the engine is there and would be found up to date
    return shlex.join(argv) if argv else "build-engine <model.onnx> -o <engine> --rebuild"


def _runtime_ok(flavour: str, built: str, installed: str, version_compatible: bool) -> bool:
    if built == installed:
        return True
    if flavour == "tensorrt-rtx":  # its engines are tied to the release, version-compatible or not
        return False
    b, i = built.split("."), installed.split(".")
    # a version-compatible TensorRT engine runs on the same major release, this version or later
    return version_compatible and b[0] == i[0] and tuple(map(int, i[:3])) >= tuple(map(int, b[:3]))


def gpu_mismatch(target: Target, gpu: GpuInfo) -> str | None:
    """Why this GPU cannot run an engine built for `target`, or None when it can."""
    cc = gpu.cc_tuple
    if target.compute_capabilities:  # TensorRT-RTX: the list it compiled for
        ok = [parse_cc(c.rstrip("+")) for c in target.compute_capabilities]
        open_ended = [parse_cc(c.rstrip("+")) for c in target.compute_capabilities if c.endswith("+")]
        if cc in ok or any(cc[0] == o[0] and cc >= o for o in open_ended):
            return None
        return (f"built for compute capability {', '.join(target.compute_capabilities)}, "
                f"this GPU ({gpu.name}) is {gpu.compute_capability}")
    if target.hardware_compatibility == "ampere+":
        return None if cc >= AMPERE else f"built ampere+, this GPU ({gpu.name}) is {gpu.compute_capability}"
    built_cc = target.compute_capability
    if built_cc is None or parse_cc(built_cc) != cc:
        return (f"built on compute capability {built_cc} ({target.gpu}), this GPU ({gpu.name}) is "
                f"{gpu.compute_capability}")
    return None


def check_sidecar(engine: Path, sidecar: Sidecar, flavour_name: str | None, flavour_version: str | None,
                  gpu: GpuInfo | None) -> None:
    """Raise InputError naming the first mismatch between the engine and this machine."""
    engine = Path(engine)
    again = f"; rebuild on this station with: {rebuild_command(sidecar)}"
    where = str(engine)
    digest = sidecar.engine.sha256
    if digest and sha256_file(engine) != digest:
        raise InputError(where, None, f"the engine does not match its sidecar {sidecar_path(engine).name} "
                                      f"(sha256 differs: replaced or damaged){again}")
    built = sidecar.tensorrt
    if flavour_name is None:
        raise InputError(where, None, f"built with {built.flavour} {built.version}, which is not "
                                      f"installed here{again}")
    if flavour_name != built.flavour:
        raise InputError(where, None, f"built with {built.flavour} {built.version}, installed is "
                                      f"{flavour_name} {flavour_version}{again}")
    if not _runtime_ok(built.flavour, built.version, flavour_version, sidecar.target.version_compatible):
        why = ("TensorRT-RTX engines run only on the release that built them" if built.flavour == "tensorrt-rtx"
               else "engines are tied to the TensorRT version unless built --version-compatible")
        raise InputError(where, None, f"built with {built.flavour} {built.version}, installed is "
                                      f"{flavour_version} ({why}){again}")
    if gpu is None:
        raise InputError(where, None, "needs an NVIDIA GPU and none was found (no driver or no device); "
                                      "use the .onnx model with the ONNX Runtime backend on this machine")
    why = gpu_mismatch(sidecar.target, gpu)
    if why:
        raise InputError(where, None, why + again)
