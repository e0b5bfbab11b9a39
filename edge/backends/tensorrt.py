"""TensorRT engines on the station's GPU (TensorRT 10, 11 and TensorRT-RTX runtimes).

Opening checks the sidecar before any runtime starts (edge.backends.sidecar), then deserializes
once, allocates everything once (pinned host and device buffers, one execution context and stream
per slot) and binds tensors by name. Two slots let two frames be in flight: submit() of frame n+1
uploads and launches on one stream while frame n's compute and download finish on the other, and
collect() waits only for its own slot. CUDA events time upload, compute and download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..gpu import probe_gpu
from ..recipe import RECIPE_KEY, recipe_json
from ..telemetry import Stage
from .base import RunnerBase
from .sidecar import Sidecar, check_sidecar, read_sidecar
from .trt_flavours import load


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8,
            "bool": 1}.get(dtype, 4)


def open_engine(path: Path, where: str, cuda: str = "auto") -> "TensorRTRunner":
    sidecar = read_sidecar(path)
    flavour = load(sidecar.tensorrt.flavour)
    gpu = probe_gpu()
    check_sidecar(path, sidecar, flavour.name if flavour else None, flavour.version if flavour else None, gpu)
    return TensorRTRunner(Path(path), sidecar, flavour, cuda, where)


@dataclass
class _Slot:
    context: object
    stream: object
    events: tuple
    host_in: np.ndarray
    host_out: np.ndarray        # in the engine's output dtype
    dev_in: int
    dev_out: int
    out32: np.ndarray | None    # float32 copy of a float16/bfloat16 output, made at collect
    busy: bool = False


_NP = {"float32": np.float32, "float16": np.float16}  # output dtypes the station can read


class TensorRTRunner(RunnerBase):
    SLOTS = 2
    overlaps = True

    def __init__(self, path: Path, sidecar: Sidecar, flavour, cuda: str = "auto", where: str = "<config>"):
        self.path, self.sidecar, self.flavour, self.cuda_kind, self.where = path, sidecar, flavour, cuda, where
        self.name = f"{flavour.name} {flavour.version} ({sidecar.precision})"
        ins, outs = sidecar.io.inputs, sidecar.io.outputs
        if len(ins[0].shape) != 4 or ins[0].dtype != "float32":
            raise InputError(str(path), None, f"expected one float32 (N, C, H, W) input, sidecar says {ins[0]}")
        self.input_name, self.input_shape = ins[0].name, tuple(int(d) for d in ins[0].shape)
        if any(d < 1 for d in self.input_shape):
            raise InputError(str(path), None, f"expected a fixed input shape in the sidecar, got {self.input_shape}")
        if outs[0].dtype not in _NP:
            raise InputError(str(path), None, f"output {outs[0].name!r} is {outs[0].dtype}: the station reads "
                                              f"float32 or float16 outputs (rebuild with a float output)")
        self.outputs = outs
        self.output_dtype = np.dtype(_NP[outs[0].dtype])
        self.device_outputs = self.output_dtype == np.float32 and self.input_shape[0] == 1
        self.output_shape = None  # from the execution context once the input shape is set
        self.metadata = {RECIPE_KEY: recipe_json(sidecar.recipe)}
        self.last_timings: dict[str, float] = {}
        self._next = 0
        self.mem = None

    def _open_impl(self):
        from ..cuda import open_memory

        self.mem = mem = open_memory(self.cuda_kind, where=self.where)
        trt = self.flavour.trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if self.sidecar.target.version_compatible and hasattr(self._runtime, "engine_host_code_allowed"):
            self._runtime.engine_host_code_allowed = True  # a version-compatible engine carries its lean runtime
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(str(self.path), None, f"{self.flavour.describe()} could not load the engine "
                                                   "(see the TensorRT message above)")
        self.slots = []
        dynamic = any(d < 0 for d in self.engine.get_tensor_shape(self.input_name))
        profiles = int(getattr(self.engine, "num_optimization_profiles", 1))
        # a dynamic-shape engine's contexts each need a profile of their own: with fewer profiles
        # than slots (an engine built elsewhere) frames run one at a time rather than share one
        slots = self.SLOTS if not dynamic or profiles >= self.SLOTS else 1
        self.overlaps = slots > 1  # one slot: frame n+1 may not be submitted before frame n is collected
        for i in range(slots):
            ctx = self.engine.create_execution_context()
            stream = mem.stream()
            if dynamic and profiles > 1:
                ctx.set_optimization_profile_async(i, stream.handle)
            if dynamic:
                if ctx.set_input_shape(self.input_name, self.input_shape) is False:  # outside every profile
                    raise InputError(str(self.path), None, f"the engine takes no input of shape {self.input_shape} "
                                                           "(outside its optimisation profile): rebuild it with "
                                                           "build-engine --shape for the station's frames")
            # outputs sized by the context: with a dynamic input dimension the engine (and the
            # builder's sidecar) says -1 there until the input shape is set
            shapes = {o.name: tuple(int(d) for d in ctx.get_tensor_shape(o.name)) for o in self.outputs}
            self.output_shape = shapes[self.outputs[0].name]
            host_in = mem.pinned(self.input_shape, np.float32)
            host_out = mem.pinned(self.output_shape, self.output_dtype)
            dev_in, dev_out = mem.device(host_in.nbytes), mem.device(host_out.nbytes)
            ctx.set_tensor_address(self.input_name, dev_in)
            ctx.set_tensor_address(self.outputs[0].name, dev_out)
            for extra in self.outputs[1:]:  # outputs the station does not read still need somewhere to go
                nbytes = int(np.prod(shapes[extra.name])) * _itemsize(extra.dtype)
                ctx.set_tensor_address(extra.name, mem.device(nbytes))
            events = tuple(mem.event() for _ in range(4))
            out32 = None if self.output_dtype == np.float32 else np.empty(self.output_shape, np.float32)
            self.slots.append(_Slot(ctx, stream, events, host_in, host_out, dev_in, dev_out, out32))
        for _ in range(2):  # warm-up: first launches pay for lazy loading / JIT before the station is ready
            self.infer(np.zeros(self.input_shape, np.float32))

    def _close_impl(self):
        if self.mem is not None:
            for s in getattr(self, "slots", []):
                s.stream.synchronize()
            self.slots, self.engine = [], None
            self.mem.close()
            self.mem = None

    def release_thread(self) -> None:
        if self.mem is not None:
            self.mem.unbind_thread()

    def next_input(self) -> np.ndarray:
        """The pinned input buffer the next submit() uploads: write the frame here and call
        submit(None) to skip the copy. Waits if that slot's previous frame is still in flight."""
        self.mem.bind_thread()
        slot = self.slots[self._next]
        if slot.busy:
            slot.stream.synchronize()
        return slot.host_in

    def submit(self, batch: np.ndarray | None) -> _Slot:
        """Queue upload, compute and download on the next slot's stream; `batch` is copied into
        pinned memory first unless it is None (already written into next_input())."""
        self.mem.bind_thread()  # the pipeline calls from its inference thread, not the opening one
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
        self.mem.bind_thread()
        e0, e1, e2, e3 = slot.events
        e3.synchronize()
        slot.busy = False
        ms = self.mem.elapsed_ms
        self.last_timings = {Stage.UPLOAD: ms(e0, e1) / 1e3, Stage.COMPUTE: ms(e1, e2) / 1e3,
                             Stage.DOWNLOAD: ms(e2, e3) / 1e3}
        if slot.out32 is not None:  # a half-precision output, widened once into a preallocated buffer
            np.copyto(slot.out32, slot.host_out)
            return slot.out32
        return slot.host_out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.collect(self.submit(batch))

    def device_views(self, slot: _Slot, h: int, w: int):
        """(input, first output) of a collected slot as numba device arrays (C=1, batch 1), cut to
        the frame's h x w (the engine's input is padded beyond a smaller frame), for detection on
        the GPU; valid until that slot is submitted again. float32 outputs only."""
        from numba import cuda

        if self.output_dtype != np.float32:
            raise ValueError("GPU detection reads float32 engine outputs only")

        def view(ptr, shape):
            full = cuda.from_cuda_array_interface({"shape": tuple(shape[2:]), "typestr": "<f4", "data": (ptr, False),
                                                   "version": 3, "strides": None}, owner=None, sync=False)
            return full[:h, :w]
        return view(slot.dev_in, self.input_shape), view(slot.dev_out, self.output_shape)
