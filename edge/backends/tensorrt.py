"""TensorRT engines on the station's GPU (TensorRT 10, 11 and TensorRT-RTX runtimes).

Opening checks the sidecar before any runtime starts (edge.backends.sidecar), then deserializes
once, allocates everything once (pinned host and device buffers, one execution context and stream
per slot) and binds tensors by name. Two slots let two frames be in flight: submit() of frame n+1
uploads and launches on one stream while frame n's compute and download finish on the other, and
collect() waits only for its own slot. CUDA events time upload, compute and download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..gpu import probe_gpu
from ..recipe import RECIPE_KEY
from .sidecar import check_sidecar, read_sidecar
from .trt_flavours import load


def open_engine(path: Path, where: str, cuda: str = "auto") -> "TensorRTRunner":
    sidecar = read_sidecar(path)
    flavour = load(sidecar["tensorrt"]["flavour"])
    gpu = probe_gpu()
    check_sidecar(path, sidecar, flavour.name if flavour else None, flavour.version if flavour else None, gpu)
    return TensorRTRunner(Path(path), sidecar, flavour, cuda, where)


@dataclass
class _Slot:
    context: object
    stream: object
    events: tuple
    host_in: np.ndarray
    host_out: np.ndarray
    dev_in: int
    dev_out: int
    busy: bool = False


class TensorRTRunner:
    SLOTS = 2

    def __init__(self, path: Path, sidecar: dict, flavour, cuda: str = "auto", where: str = "<config>"):
        self.path, self.sidecar, self.flavour, self.cuda_kind, self.where = path, sidecar, flavour, cuda, where
        self.name = f"{flavour.name} {flavour.version} ({sidecar['precision']})"
        ins, outs = sidecar["io"]["inputs"], sidecar["io"]["outputs"]
        if len(ins) != 1 or len(ins[0]["shape"]) != 4 or ins[0]["dtype"] != "float32":
            raise InputError(str(path), None, f"expected one float32 (N, C, H, W) input, sidecar says {ins}")
        self.input_name, self.input_shape = ins[0]["name"], tuple(int(d) for d in ins[0]["shape"])
        self.outputs = outs
        self.output_shape = tuple(int(d) for d in outs[0]["shape"])
        self.metadata = {RECIPE_KEY: json.dumps(sidecar["recipe"])} if sidecar.get("recipe") else {}
        self.last_timings: dict[str, float] = {}
        self._next = 0
        self.mem = None

    def __enter__(self):
        from ..cuda import open_memory

        self.mem = mem = open_memory(self.cuda_kind, where=self.where)
        trt = self.flavour.trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(str(self.path), None, f"{self.flavour.describe()} could not load the engine "
                                                   "(see the TensorRT message above)")
        self.slots = []
        for _ in range(self.SLOTS):
            ctx = self.engine.create_execution_context()
            host_in = mem.pinned(self.input_shape, np.float32)
            host_out = mem.pinned(self.output_shape, np.float32)
            dev_in, dev_out = mem.device(host_in.nbytes), mem.device(host_out.nbytes)
            if any(d < 0 for d in self.engine.get_tensor_shape(self.input_name)):
                ctx.set_input_shape(self.input_name, self.input_shape)
            ctx.set_tensor_address(self.input_name, dev_in)
            ctx.set_tensor_address(self.outputs[0]["name"], dev_out)
            for extra in self.outputs[1:]:  # outputs the station does not read still need somewhere to go
                nbytes = int(np.prod(extra["shape"])) * np.dtype(extra["dtype"]).itemsize
                ctx.set_tensor_address(extra["name"], mem.device(nbytes))
            events = tuple(mem.event() for _ in range(4))
            self.slots.append(_Slot(ctx, mem.stream(), events, host_in, host_out, dev_in, dev_out))
        for _ in range(2):  # warm-up: first launches pay for lazy loading / JIT before the station is ready
            self.infer(np.zeros(self.input_shape, np.float32))
        return self

    def __exit__(self, *exc):
        if self.mem is not None:
            for s in getattr(self, "slots", []):
                s.stream.synchronize()
            self.slots, self.engine = [], None
            self.mem.close()
            self.mem = None

    def next_input(self) -> np.ndarray:
        """The pinned input buffer the next submit() uploads: write the frame here and call
        submit(None) to skip the copy. Waits if that slot's previous frame is still in flight."""
        slot = self.slots[self._next]
        if slot.busy:
            slot.stream.synchronize()
        return slot.host_in

    def submit(self, batch: np.ndarray | None) -> _Slot:
        """Queue upload, compute and download on the next slot's stream; `batch` is copied into
        pinned memory first unless it is None (already written into next_input())."""
        slot = self.slots[self._next]
        self._next = (self._next + 1) % len(self.slots)
        if slot.busy:  # its previous frame was never collected: finish it before reusing the buffers
            slot.stream.synchronize()
        if batch is not None:
            np.copyto(slot.host_in, batch, casting="same_kind")
        e0, e1, e2, e3 = slot.events
        e0.record(slot.stream)
        self.mem.htod(slot.dev_in, slot.host_in, slot.stream)
        e1.record(slot.stream)
        if not slot.context.execute_async_v3(slot.stream.handle):
            raise RuntimeError(f"{self.flavour.describe()}: execute_async_v3 failed")
        e2.record(slot.stream)
        self.mem.dtoh(slot.host_out, slot.dev_out, slot.stream)
        e3.record(slot.stream)
        slot.busy = True
        return slot

    def collect(self, slot: _Slot) -> np.ndarray:
        """Wait for one slot; its output stays valid until that slot is submitted again."""
        e0, e1, e2, e3 = slot.events
        e3.synchronize()
        slot.busy = False
        ms = self.mem.elapsed_ms
        self.last_timings = {"upload": ms(e0, e1) / 1e3, "compute": ms(e1, e2) / 1e3, "download": ms(e2, e3) / 1e3}
        return slot.host_out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.collect(self.submit(batch))

    def device_views(self, slot: _Slot):
        """(input, first output) of a collected slot as numba device arrays (C=1, batch 1), for
        detection on the GPU; valid until that slot is submitted again."""
        from numba import cuda

        def view(ptr, shape):
            return cuda.from_cuda_array_interface({"shape": tuple(shape[2:]), "typestr": "<f4", "data": (ptr, False),
                                                   "version": 3, "strides": None}, owner=None, sync=False)
        return view(slot.dev_in, self.input_shape), view(slot.dev_out, self.output_shape)
