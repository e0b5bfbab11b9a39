"""ONNX Runtime on the CPU: the embedded default backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import RunnerBase


class OnnxRuntimeRunner(RunnerBase):
    def __init__(self, path: Path, threads: int = 0, park_workers: bool = False):
        self.path, self.threads, self.park_workers = Path(path), threads, park_workers
        self.name = "onnxruntime"
        self.last_timings: dict = {}
        self._session: Any = None
        self._inspect()  # shape, metadata and a readable error before anything is opened

    def _inspect(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        # Workers spin between the graph's many small operators while a run lasts (parking them
        # there costs a wake-up per operator: docs/BENCHMARKS.md), and stop when it returns, so they
        # do not steal the cores the detection kernels and the acquisition thread need between runs.
        # park_workers: never spin (bench.bench_model --park-workers measures the difference).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if self.park_workers else "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for damaged or unsupported models
            raise InputError(str(self.path), None, f"not a usable ONNX model ({str(e).splitlines()[0][:160]})") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise InputError(str(self.path), None, f"expected a model with one image input, found {len(inputs)}")
        shape = inputs[0].shape
        if len(shape) != 4 or not (isinstance(shape[1], int) and shape[1] > 0):
            raise InputError(str(self.path), None,
                             f"expected input shape (batch, channels, height, width) with fixed channels; got {shape}")
        fixed_hw = [isinstance(d, int) and d > 0 for d in shape[2:]]
        if fixed_hw[0] != fixed_hw[1]:
            raise InputError(str(self.path), None, f"expected height and width both fixed or both dynamic; got {shape}")
        if inputs[0].type != "tensor(float)":
            raise InputError(str(self.path), None, f"expected a float32 input, got {inputs[0].type}")
        batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 0
        # H = W = 0: a whole-frame model (edge.preprocess pads each frame to the recipe's input_multiple)
        h, w = (shape[2], shape[3]) if fixed_hw[0] else (0, 0)
        self.input_shape = (batch, shape[1], h, w)
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def _open_impl(self):
        if self._session is None:
            self._inspect()

    def _close_impl(self):
        self._session = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        assert self._session is not None, "infer() on a closed runner"
        return self._session.run([self.output_name], {self.input_name: batch})[0]
