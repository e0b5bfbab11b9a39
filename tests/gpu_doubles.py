"""A stand-in for the TensorRT runner's asynchronous interface, over ONNX Runtime.

The GPU runner cannot run on machines without a GPU; this drives the pipeline's overlapped path
(next_input / submit / collect, two slots) and, under Numba's CUDA simulator, its GPU-detection
path (device_views), so their logic is tested everywhere. The real runner is tested on a GPU.
As strict as the real one about buffers: each slot has one input and one output buffer, reused
by that slot's next submit, so a caller that keeps an output too long sees it overwritten.
"""

from __future__ import annotations

import numpy as np

from edge.backends.base import RunnerBase
from edge.telemetry import Stage


class SubmitCollectOnnxRuntime(RunnerBase):
    overlaps = True

    def __init__(self, inner):
        self.inner, self.input_shape, self.metadata = inner, inner.input_shape, inner.metadata
        self.name = "ort-async"
        shape = (1,) + tuple(inner.input_shape[1:])
        self.inputs = [np.zeros(shape, np.float32) for _ in range(2)]
        self.outputs = [None, None]  # allocated on the first submit of each slot, then reused
        self.next, self.last_timings, self.submitted = 0, {}, 0

    def open(self):
        self.inner.open()
        return self

    def close(self):
        self.inner.close()

    def infer(self, batch):
        return self.inner.infer(batch)

    def next_input(self):
        return self.inputs[self.next]

    def submit(self, batch):
        i = self.next
        self.next ^= 1
        if batch is not None:
            np.copyto(self.inputs[i], batch)
        y = self.inner.infer(self.inputs[i])
        if self.outputs[i] is None:
            self.outputs[i] = np.empty_like(y)
        np.copyto(self.outputs[i], y)
        self.submitted += 1
        return i

    def collect(self, i):
        self.last_timings = {Stage.UPLOAD: 1e-4, Stage.COMPUTE: 2e-4, Stage.DOWNLOAD: 1e-4}
        return self.outputs[i]


class DeviceSubmitCollectOnnxRuntime(SubmitCollectOnnxRuntime):
    """Also hands out each slot's input and output as numba device arrays (under Numba's CUDA
    simulator where there is no GPU), with a fixed batch of 1 like a whole-frame engine."""
    device_outputs = True

    def __init__(self, inner):
        super().__init__(inner)
        self.input_shape = self.inputs[0].shape

    def device_views(self, i, h, w):
        from numba import cuda
        return cuda.to_device(self.inputs[i][0, 0, :h, :w]), cuda.to_device(self.outputs[i][0, 0, :h, :w])
