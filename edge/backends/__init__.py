"""Model runners behind one protocol (see base.Runner)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import Runner


def open_runner(path: Path, backend: str = "auto", threads: int = 0, where: str = "<command line>",
                cuda: str = "auto") -> Runner:
    path = Path(path)
    if not path.is_file():
        raise InputError(where, "model.path", f"model file not found: {path}")
    suffix = path.suffix.lower()
    if backend == "auto":
        backend = "onnxruntime" if suffix == ".onnx" else "tensorrt"
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeRunner
        return OnnxRuntimeRunner(path, threads)
    if backend == "tensorrt":
        if suffix == ".onnx":
            raise InputError(where, "model.backend", f"tensorrt runs engines, and {path.name} is an ONNX model: "
                                                     f"build one with build-engine {path.name} -o {path.stem}.plan, "
                                                     "or use backend: onnxruntime (or auto)")
        from .tensorrt import open_engine
        return open_engine(path, where, cuda)
    raise InputError(where, "model.backend", f"expected auto, onnxruntime or tensorrt, got {backend!r}")


__all__ = ["open_runner", "Runner"]
