"""OpenVINO on the CPU: the same ONNX model as ONNX Runtime, with bf16 where the CPU computes it.

On a CPU with native bf16 (Intel AMX or AVX-512 BF16) OpenVINO runs the convolutions in bf16 with
fp32 accumulation, about twice ONNX Runtime's fp32 speed on the default model (docs/BENCHMARKS.md);
the maps move by a few hundredths at most and the verdicts with them (docs/ACCURACY.md, "bf16 on the
CPU"). Install with the `openvino` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import RunnerBase

PRECISIONS = ("auto", "fp32", "bf16")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def cpu_has_bf16(core: Any) -> bool:
    """OpenVINO's own answer: BF16 among the CPU plugin's optimisation capabilities."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner(RunnerBase):
    def __init__(self, path: Path, threads: int = 0, precision: str = "auto", where: str = "<command line>"):
        if precision not in PRECISIONS:
            raise InputError(where, "model.precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.path, self.threads = Path(path), threads
        self.last_timings: dict = {}
        self._compiled: Any = None
        self._request: Any = None
        try:
            import openvino as ov
        except ImportError:
            raise InputError(where, "model.backend", "openvino is not installed: pip install -e '.[openvino]', "
                                                     "or use backend: onnxruntime") from None
        self._core = ov.Core()
        native = cpu_has_bf16(self._core)
        if precision == "bf16" and not native:
            raise InputError(where, "model.precision", "bf16 needs a CPU that computes it (Intel AMX or AVX-512 "
                                                       "BF16), and this one does not; use fp32 or auto")
        self.precision = ("bf16" if native else "fp32") if precision == "auto" else precision
        self.name = f"openvino {'.'.join(ov.__version__.split('.')[:2])} ({self.precision})"
        self._inspect()

    def _inspect(self):
        try:
            model = self._core.read_model(str(self.path))
        except Exception as e:  # OpenVINO raises RuntimeError with a multi-line report for damaged models
            raise InputError(str(self.path), None, f"not a usable ONNX model ({str(e).splitlines()[0][:160]})") from None
        if len(model.inputs) != 1:
            raise InputError(str(self.path), None, f"expected a model with one image input, found {len(model.inputs)}")
        pshape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else 0 for d in pshape]
        if len(dims) != 4 or dims[1] <= 0:
            raise InputError(str(self.path), None,
                             f"expected input shape (batch, channels, height, width) with fixed channels; got {pshape}")
        if (dims[2] > 0) != (dims[3] > 0):
            raise InputError(str(self.path), None, f"expected height and width both fixed or both dynamic; got {pshape}")
        if model.inputs[0].get_element_type().get_type_name() != "f32":
            raise InputError(str(self.path), None, f"expected a float32 input, got {model.inputs[0].get_element_type()}")
        self.input_shape = (dims[0], dims[1], dims[2], dims[3])
        self.metadata = self._onnx_metadata(model)
        self._model = model

    @staticmethod
    def _onnx_metadata(model) -> dict[str, str]:
        """The ONNX file's metadata_props, which OpenVINO's ONNX reader keeps under rt_info['framework']."""
        info = model.get_rt_info()
        if "framework" not in info:
            return {}
        framework = info["framework"]
        if hasattr(framework, "astype"):  # an OVAny wrapping the dict, in some OpenVINO releases
            framework = framework.astype(dict)
        return {k: v.astype(str) if hasattr(v, "astype") else str(v) for k, v in framework.items()}

    def _open_impl(self):
        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self._compiled = self._core.compile_model(self._model, "CPU", config)
        self._request = self._compiled.create_infer_request()

    def _close_impl(self):
        self._request = self._compiled = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        assert self._request is not None, "infer() on a closed runner"
        # The output tensor belongs to the request and is overwritten by its next infer (base.py's rule).
        return self._request.infer({0: batch}, share_inputs=True, share_outputs=True)[0]
