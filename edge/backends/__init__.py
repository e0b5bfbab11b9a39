"""Model runners behind one protocol (see base.Runner)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import Runner


def openvino_installed() -> bool:
    """The openvino extra: `auto` then runs ONNX models with OpenVINO (bf16 where the CPU computes
    it, about twice ONNX Runtime's speed on the default model), else with ONNX Runtime."""
    import importlib.util
    return importlib.util.find_spec("openvino") is not None


def open_runner(path: Path, backend: str = "auto", threads: int = 0, where: str = "<command line>",
                cuda: str = "auto", precision: str = "auto") -> Runner:
    path = Path(path)
    if not path.is_file():
        raise InputError(where, "model.path", f"model file not found: {path}")
    suffix = path.suffix.lower()
    if backend == "auto":
        backend = ("openvino" if openvino_installed() else "onnxruntime") if suffix == ".onnx" else "tensorrt"
    if precision != "auto" and backend != "openvino":
        raise InputError(where, "model.precision", f"{backend} takes the precision the model or engine was built "
                                                   f"in; {precision} is for backend: openvino (or leave it auto)")
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeRunner
        return OnnxRuntimeRunner(path, threads)
    if backend == "openvino":
        if suffix != ".onnx":
            raise InputError(where, "model.backend", f"openvino runs ONNX models, and {path.name} is not one")
        from .openvino import OpenVinoRunner
        return OpenVinoRunner(path, threads, precision, where)
    if backend == "tensorrt":
        if suffix == ".onnx":
            raise InputError(where, "model.backend", f"tensorrt runs engines, and {path.name} is an ONNX model: "
                                                     f"build one with build-engine {path.name} -o {path.stem}.plan, "
                                                     "or use backend: onnxruntime (or auto)")
        from .tensorrt import open_engine
        return open_engine(path, where, cuda)
    raise InputError(where, "model.backend", f"expected auto, onnxruntime, openvino or tensorrt, got {backend!r}")


__all__ = ["open_runner", "Runner"]
