"""The TensorRT flavours a station may have, behind one small description.

- tensorrt 10.x (JetPack 6, desktop): builder precision flags and INT8 calibrators still exist;
  a strongly typed network takes its precision from the ONNX graph instead.
- tensorrt 11.x: networks are always strongly typed; no precision flags, no calibrators.
- tensorrt-rtx (module tensorrt_rtx, NVIDIA's documented name, or tensorrt_rtx_bindings, the
  registry wheel's; desktop RTX GPUs): always strongly typed, builds ahead of time on a CPU-only
  machine, compiles its kernels just in time on the GPU. Its engines run only on the release
  that built them.

One place imports them, so the builder and the runner agree on what is installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import InputError

FLAVOURS = ("tensorrt", "tensorrt-rtx")
_MODULES = {"tensorrt": ("tensorrt",), "tensorrt-rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings")}


@dataclass(frozen=True)
class Flavour:
    name: str        # "tensorrt" | "tensorrt-rtx"
    version: str
    trt: ModuleType  # the imported bindings

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def always_strongly_typed(self) -> bool:
        return self.name == "tensorrt-rtx" or self.major >= 11

    @property
    def has_calibrators(self) -> bool:
        return self.name == "tensorrt" and self.major == 10

    @property
    def has_build_timing_cache(self) -> bool:
        # TensorRT-RTX deprecates it: a no-op there that would also make the builder look for a GPU
        return self.name == "tensorrt"

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def load(name: str) -> Flavour | None:
    """The flavour if one of its modules imports, else None."""
    for module in _MODULES[name]:
        try:
            mod = importlib.import_module(module)
            version = str(mod.__version__)
        except Exception:  # missing, or a stub wheel that fails on import
            continue
        if not hasattr(mod, "Builder"):
            continue  # the registry's tensorrt-cu12 stub package, not the libraries
        return Flavour(name, version, mod)
    return None


def pick(requested: str = "auto", where: str = "<command line>", key: str = "--flavour") -> Flavour:
    """The installed flavour asked for; with auto, TensorRT when present (Jetson, datacentre), else
    TensorRT-RTX."""
    if requested not in ("auto",) + FLAVOURS:
        raise InputError(where, key, f"expected auto, tensorrt or tensorrt-rtx, got {requested!r}")
    names = FLAVOURS if requested == "auto" else (requested,)
    for name in names:
        f = load(name)
        if f is not None:
            return f
    hint = ("pip install -e '.[build]' installs TensorRT-RTX; TensorRT comes with JetPack or NVIDIA's "
            "own packages")
    wanted = "any TensorRT" if requested == "auto" else requested
    raise InputError(where, key, f"{wanted} is not installed ({hint})")
