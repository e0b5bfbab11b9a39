"""Model runners behind one protocol (see base.Runner)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import Runner


def open_runner(path: Path, backend: str = "auto", threads: int = 0, where: str = "<command line>") -> Runner:
    path = Path(path)
    if not path.is_file():
        raise InputError(where, "model.path", f"model file not found: {path}")
    suffix = path.suffix.lower()
    if backend == "auto":
        backend = "onnxruntime" if suffix == ".onnx" else "tensorrt"
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeRunner
        return OnnxRuntimeRunner(path, threads)
    raise InputError(where, "model.path",
                     f"expected an .onnx model: the TensorRT backend ({path.name}) is not built yet")


__all__ = ["open_runner", "Runner"]
