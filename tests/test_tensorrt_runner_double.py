"""The TensorRT runner's own logic, against a double of the TensorRT runtime and the CUDA memory
layer, because neither runs without an NVIDIA GPU. The doubles are as strict as the real parts
where the runner has failed before: cudaMallocHost/cudaMalloc refuse negative sizes, a dynamic
engine reports -1 until the context's input shape is set, a version-compatible engine does not
deserialize unless host code is allowed, and a CUDA context is current only on the threads that
made it current (pycuda: "invalid device context"). The real runner runs in tests/test_gpu_path.py
on a GPU."""

import threading
from pathlib import Path

import numpy as np
import pytest

from edge.backends.tensorrt import TensorRTRunner
from edge.backends.trt_flavours import Flavour
from edge.errors import InputError


class FakeMemory:
    """pycuda's rules: a context is current only on threads that pushed it, and a thread that
    ends with a context still pushed aborts the process ("context stack was not empty"): here
    the thread's name lands in `aborted` when it ends (checked by a per-thread sentinel)."""
    name = "double"

    def __init__(self):
        self.buffers: dict[int, bytearray] = {}
        self.bound = {threading.get_ident()}
        self.opener = threading.get_ident()
        self.next_ptr = 0x1000
        self.closed = False
        self.aborted: list[str] = []
        self._local = threading.local()

    def _ctx(self):
        if threading.get_ident() not in self.bound:
            raise RuntimeError("cuMemcpyHtoDAsync failed: invalid device context")

    def bind_thread(self):
        if threading.get_ident() in self.bound:
            return
        self.bound.add(threading.get_ident())
        mem, name = self, threading.current_thread().name

        class Sentinel:  # thread-local storage is cleared when its thread ends
            def __del__(self):
                if threading.get_ident() in mem.bound or getattr(self, "pushed", False):
                    mem.aborted.append(name)
        self._local.sentinel = Sentinel()
        self._local.sentinel.pushed = True

    def unbind_thread(self):
        if threading.get_ident() != self.opener and threading.get_ident() in self.bound:
            self.bound.discard(threading.get_ident())
            self._local.sentinel.pushed = False

    def pinned(self, shape, dtype):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if n < 0 or any(int(d) < 0 for d in shape):
            raise RuntimeError(f"cudaMallocHost({n}): cudaErrorInvalidValue")
        return np.zeros(shape, dtype)

    def device(self, nbytes):
        if nbytes <= 0:
            raise RuntimeError(f"cudaMalloc({nbytes}): cudaErrorInvalidValue")
        ptr, self.next_ptr = self.next_ptr, self.next_ptr + nbytes + 256
        self.buffers[ptr] = bytearray(nbytes)
        return ptr

    def stream(self):
        mem = self

        class S:
            handle = 1

            def synchronize(self):
                mem._ctx()
        return S()

    def event(self):
        mem = self

        class E:
            def record(self, stream):
                mem._ctx()

            def synchronize(self):
                mem._ctx()
        return E()

    def elapsed_ms(self, a, b):
        return 0.1

    def htod(self, dst, src, stream):
        self._ctx()
        buf = self.buffers[dst]
        assert src.nbytes <= len(buf), "upload larger than the device buffer"
        buf[:src.nbytes] = src.tobytes()

    def dtoh(self, dst, src, stream):
        self._ctx()
        buf = self.buffers[src]
        assert dst.nbytes <= len(buf), "download larger than the device buffer"
        dst[...] = np.frombuffer(bytes(buf[:dst.nbytes]), dst.dtype).reshape(dst.shape)

    def close(self):
        self.closed = True


def fake_trt(mem: FakeMemory, out_dtype=np.float32, version_compatible=False, max_batch=64, profiles=2):
    """A TensorRT module double: one dynamic-batch input (`profiles` profiles of batch
    1..max_batch), output = input * 0.5 in out_dtype. set_input_shape returns False outside the
    profile, and for a profile another execution context already uses, as TensorRT does."""
    claimed: dict[int, object] = {}

    class Context:
        def __init__(self):
            self.shape, self.addr, self.profile = None, {}, 0

        def set_optimization_profile_async(self, index, stream):
            if not 0 <= index < profiles or claimed.get(index, self) is not self:
                return False
            self.profile = index
            return True

        def set_input_shape(self, name, shape):
            if not 1 <= shape[0] <= max_batch or tuple(shape[1:]) != (1, 64, 64):
                return False
            if claimed.setdefault(self.profile, self) is not self:  # "profile 0 is used by another context"
                return False
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self.shape if self.shape is not None else (-1, 1, 64, 64)

        def set_tensor_address(self, name, ptr):
            assert ptr in mem.buffers, f"{name}: not a device buffer"
            self.addr[name] = ptr

        def execute_async_v3(self, stream):
            mem._ctx()
            n = int(np.prod(self.shape))
            x = np.frombuffer(bytes(mem.buffers[self.addr["image"]][:n * 4]), np.float32)
            y = (x * 0.5).astype(out_dtype).tobytes()
            out = mem.buffers[self.addr["output"]]
            assert len(y) <= len(out), "output buffer too small for the output"
            out[:len(y)] = y
            return True

    class Engine:
        num_optimization_profiles = profiles

        def get_tensor_shape(self, name):
            return (-1, 1, 64, 64)

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            if version_compatible and not self.engine_host_code_allowed:
                return None  # TensorRT: "engine_host_code_allowed is false; cannot deserialize"
            return Engine()

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    return type("trt", (), {"Logger": Logger, "Runtime": Runtime})


def _sidecar(precision, inputs, outputs, **target):
    """A sidecar as edge-run reads it (typed, validated)."""
    from edge.backends.sidecar import FORMAT, VERSION, Sidecar
    from edge.schema import load
    return load(Sidecar, {"format": FORMAT, "version": VERSION, "engine": {"file": "m.plan"},
                          "tensorrt": {"flavour": "tensorrt", "version": "10.3.0"}, "target": target,
                          "precision": precision, "io": {"inputs": inputs, "outputs": outputs}}, "test sidecar")


def _runner(tmp_path, monkeypatch, out_dtype="float32", version_compatible=False, max_batch=64, profiles=2):
    mem = FakeMemory()
    monkeypatch.setattr("edge.cuda.open_memory", lambda kind, where: mem)
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"engine")
    sidecar = _sidecar("fp16", [{"name": "image", "shape": [1, 1, 64, 64], "dtype": "float32"}],
                       [{"name": "output", "shape": [-1, 1, 64, 64], "dtype": out_dtype}],
                       version_compatible=version_compatible)
    np_dtype = {"float32": np.float32, "float16": np.float16}[out_dtype]
    flavour = Flavour("tensorrt", "10.3.0", fake_trt(mem, np_dtype, version_compatible, max_batch, profiles))
    return TensorRTRunner(Path(engine), sidecar, flavour), mem


def test_an_input_shape_outside_the_engines_profile_is_refused_at_open(tmp_path, monkeypatch):
    """set_input_shape returns False for a shape outside every profile; unchecked, the runner
    went on with -1 dimensions."""
    runner, _ = _runner(tmp_path, monkeypatch, max_batch=0)
    with pytest.raises(InputError, match="outside its optimisation profile"):
        runner.open()


@pytest.mark.parametrize("profiles, slots", [(2, 2), (1, 1)])
def test_each_execution_context_has_a_profile_of_its_own(tmp_path, monkeypatch, profiles, slots):
    """Two contexts of a dynamic-shape engine may not share profile 0: with two profiles (what
    build-engine builds) each slot takes its own; an engine with one runs frames one at a time."""
    runner, _ = _runner(tmp_path, monkeypatch, profiles=profiles)
    x = np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32)
    with runner:
        assert len(runner.slots) == slots
        assert sorted(s.context.profile for s in runner.slots) == list(range(slots))
        assert runner.overlaps == (slots > 1)  # the pipeline overlaps frames only with two slots
        if slots > 1:
            first = runner.submit(x)
            second = runner.submit(x * 2)
            assert np.allclose(runner.collect(first), x * 0.5) and np.allclose(runner.collect(second), x)
        assert np.allclose(runner.infer(x), x * 0.5)


def test_dynamic_output_is_sized_from_the_context(tmp_path, monkeypatch):
    runner, mem = _runner(tmp_path, monkeypatch)
    x = np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32)
    with runner:
        assert runner.output_shape == (1, 1, 64, 64)
        assert np.allclose(runner.infer(x), x * 0.5)
    assert mem.closed


def test_half_precision_output_is_read_as_half_and_widened(tmp_path, monkeypatch):
    runner, _ = _runner(tmp_path, monkeypatch, out_dtype="float16")
    x = np.random.default_rng(1).random((1, 1, 64, 64), dtype=np.float32)
    with runner:
        y = runner.infer(x)
        assert y.dtype == np.float32 and np.abs(y - x * 0.5).max() < 1e-3
        with pytest.raises(ValueError, match="float32"):
            runner.device_views(runner.slots[0], 64, 64)


def test_an_unreadable_output_dtype_is_refused_at_open(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="int8"):
        TensorRTRunner(tmp_path / "m.plan", _sidecar("int8", [{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}],
                                                     [{"name": "o", "shape": [1, 1, 8, 8], "dtype": "int8"}]),
                       Flavour("tensorrt", "10.3.0", object))


def test_version_compatible_engine_deserializes(tmp_path, monkeypatch):
    runner, _ = _runner(tmp_path, monkeypatch, version_compatible=True)
    with runner:
        assert runner._runtime.engine_host_code_allowed


def test_frames_can_be_submitted_and_collected_from_another_thread(tmp_path, monkeypatch):
    """The pipeline opens the runner on the main thread and infers on its own thread."""
    runner, _ = _runner(tmp_path, monkeypatch)
    x = np.ones((1, 1, 64, 64), np.float32)
    out, errors = [], []

    def infer():
        try:
            runner.next_input()[...] = x
            out.append(runner.collect(runner.submit(None)).copy())
        except Exception as e:  # reported below, not swallowed
            errors.append(e)
    with runner:
        t = threading.Thread(target=infer)
        t.start()
        t.join()
    assert not errors, errors
    assert np.allclose(out[0], 0.5)


def test_gpu_probe_follows_cuda_visible_devices(monkeypatch):
    """nvidia-smi and NVML number GPUs by PCI bus; the runner's device 0 is the first of
    CUDA_VISIBLE_DEVICES. The probe must describe that one."""
    import edge.gpu as g
    asked = []
    monkeypatch.setattr(g, "_cuda_runtime", lambda i: None)  # no driver here: the fallbacks answer
    monkeypatch.setattr(g, "_pycuda", lambda i: None)
    monkeypatch.setattr(g, "_nvml", lambda i: None)
    monkeypatch.setattr(g.shutil, "which", lambda exe: "/usr/bin/nvidia-smi")

    def smi(argv, **kw):
        asked.append(argv[1])
        return type("R", (), {"returncode": 0, "stdout": "NVIDIA L4, 8.9, 550.54\n"})()
    monkeypatch.setattr(g.subprocess, "run", smi)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert g.probe_gpu(0).name == "NVIDIA L4" and asked == ["--id=2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f3c")
    g.probe_gpu(0)
    assert asked[-1] == "--id=GPU-8f3c"
    assert g.probe_gpu(1) is None  # CUDA sees one device only
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    g.probe_gpu(1)
    assert asked[-1] == "--id=1"


def test_gpu_probe_on_a_jetson_asks_pycuda_and_survives_nvidia_smis_na(monkeypatch):
    """A JetPack station: pycuda is the only CUDA binding, and its nvidia-smi prints [N/A] for
    the compute capability (a traceback before). pycuda's driver module is a double here (no
    driver on this machine); nvidia-smi's output is the one Jetson's prints."""
    import sys
    import types

    import edge.gpu as g
    monkeypatch.setattr(g, "_cuda_runtime", lambda i: None)
    monkeypatch.setattr(g, "_nvml", lambda i: None)
    monkeypatch.setattr(g.shutil, "which", lambda exe: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(g.subprocess, "run", lambda argv, **kw: type(
        "R", (), {"returncode": 0, "stdout": "Orin (nvgpu), [N/A], 540.4.0\n"})())
    monkeypatch.setitem(sys.modules, "pycuda", None)  # not installed
    assert g.probe_gpu(0) is None  # and no ValueError from "[N/A]"

    class Device:
        @staticmethod
        def count():
            return 1

        def __init__(self, index):
            self.index = index

        def name(self):
            return "Orin (nvgpu)"

        def compute_capability(self):
            return (8, 7)
    drv = types.SimpleNamespace(init=lambda: None, Device=Device, get_driver_version=lambda: 12060)
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=drv))
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    info = g.probe_gpu(0)
    assert (info.name, info.cc_tuple, info.driver) == ("Orin (nvgpu)", (8, 7), "CUDA 12.6")
    assert g.probe_gpu(1) is None


def test_tensorrt_rtx_engines_are_tied_to_their_release():
    from edge.backends.sidecar import _runtime_ok
    assert not _runtime_ok("tensorrt-rtx", "1.7.1.116", "1.8.0.10", version_compatible=True)
    assert _runtime_ok("tensorrt", "10.3.0", "10.7.0", version_compatible=True)
    assert not _runtime_ok("tensorrt", "10.3.0", "10.7.0", version_compatible=False)


def test_flavour_loads_nvidias_documented_module_name(monkeypatch):
    import sys
    import types

    from edge.backends import trt_flavours
    mod = types.ModuleType("tensorrt_rtx")
    mod.__version__, mod.Builder = "1.9.0.1", object
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", mod)
    f = trt_flavours.load("tensorrt-rtx")
    assert f is not None and f.trt is mod and f.version == "1.9.0.1"


def test_builder_names_a_hardware_level_this_tensorrt_lacks():
    """TensorRT before 10.9 has no SAME_COMPUTE_CAPABILITY: only asking for it may fail."""
    from build_engines.builder import BuildOptions, _target
    from edge.gpu import GpuInfo
    level = type("L", (), {"NONE": 0, "AMPERE_PLUS": 1})  # TensorRT 10.3's levels
    trt = type("trt", (), {"HardwareCompatibilityLevel": level})
    cfg = type("Cfg", (), {})()
    gpu = GpuInfo("Orin", "8.7")
    _target(Flavour("tensorrt", "10.3.0", trt), cfg, BuildOptions(hw_compat="ampere+"), gpu, "x")
    assert cfg.hardware_compatibility_level == 1
    with pytest.raises(InputError, match="10.9"):
        _target(Flavour("tensorrt", "10.3.0", trt), cfg, BuildOptions(hw_compat="same-cc"), gpu, "x")


def test_a_reload_never_leaves_the_inference_thread_without_its_gpu_detector(monkeypatch):
    """SIGHUP's set_recipe runs on another thread than inference; the GPU detector it replaces
    must be swapped, never cleared first (inference would skip GPU detection for that frame or
    call None)."""
    import time

    from edge.inspector import Inspector
    from edge.recipe import Recipe

    def slow_make(detect):
        time.sleep(0.002)  # compiling the new detector takes a while
        return object()
    monkeypatch.setattr("edge.detect.gpu_dct.make_gpu_detector", slow_make)
    runner = type("R", (), {"input_shape": (1, 1, 64, 64), "device_outputs": True})()
    ins = Inspector(runner, Recipe(), "cam0", "t")
    seen_none, stop = [], threading.Event()

    def inference():
        while not stop.is_set():
            if ins.gpu_detector is None:
                seen_none.append(1)
    t = threading.Thread(target=inference)
    t.start()
    for _ in range(30):
        ins.set_recipe(Recipe())
    stop.set()
    t.join()
    assert not seen_none


class FramesInMemory:
    """A replay source of given frames (waits rather than drops, like file replay)."""
    live = False

    def __init__(self, images):
        self.images, self.i = images, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def grab(self, timeout_s=0.5):
        from edge.sources import EndOfStream, Frame
        if self.i >= len(self.images):
            raise EndOfStream
        self.i += 1
        return Frame(self.i - 1, self.images[self.i - 1].copy(), name=f"f{self.i - 1}")


def _frames(n=24):
    rng = np.random.default_rng(7)
    images = []
    for i in range(n):
        img = rng.integers(60, 120, (64, 64), dtype=np.uint8)
        img[(i * 5) % 50:(i * 5) % 50 + 10, (i * 3) % 50:(i * 3) % 50 + 10] = 150 + 4 * i  # a patch, moving, brighter each frame
        images.append(img)
    return images


def _run_through_station(tmp_path, monkeypatch, images):
    """The real TensorRT runner (its two slots and pinned buffers reused exactly as on a GPU,
    over the runtime double) in a whole station, with an analysis stage slow enough that inference
    runs ahead. Returns (scores per frame from the records, scores of each frame alone)."""
    import json
    import time

    from conftest import station_config

    from edge import inspector as pl
    from edge.station import Station

    real_make = pl.make_detector

    def slow_make(detect):
        real = real_make(detect)

        def slow(src, rec):
            time.sleep(0.003)  # before reading: a later frame has every chance to overwrite `rec`
            return real(src, rec)
        slow.score_map = real.score_map
        return slow
    monkeypatch.setattr(pl, "make_detector", slow_make)
    runner, _ = _runner(tmp_path, monkeypatch, out_dtype="float16")  # host-side detection, overlapped inference
    out = tmp_path / "v.jsonl"
    cfg = station_config(tmp_path, tmp_path / "m.plan", cam={"queue": 4},
                         outputs={"jsonl": {"stdout": False, "path": str(out)}},
                         detect={"method": "squared_residual", "squared_residual": {"k": 1.0}})
    with Station(cfg, "cam", runner=runner, source=FramesInMemory(images)) as st:
        st.run()
        alone = [st.inspector.inspect(st.inspector.pre.to_model_space(img), img.shape).score for img in images]
    got = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    return got, [round(a, 6) for a in alone]


def test_the_inference_thread_leaves_no_cuda_context_pushed_when_it_ends(tmp_path, monkeypatch):
    """pycuda aborts the process at the end of a thread that still has the context pushed: the
    pipeline's inference thread binds the runner's context, so it must unbind it before it ends."""
    import gc
    images = _frames(6)
    mems = []
    real_init = FakeMemory.__init__

    def init(self):
        real_init(self)
        mems.append(self)
    monkeypatch.setattr(FakeMemory, "__init__", init)
    _run_through_station(tmp_path, monkeypatch, images)
    gc.collect()
    assert mems and all(not m.aborted for m in mems), [m.aborted for m in mems]
    assert all(m.bound <= {m.opener} for m in mems)


def test_no_later_frame_overwrites_an_earlier_frames_buffers(tmp_path, monkeypatch):
    images = _frames()
    got, alone = _run_through_station(tmp_path, monkeypatch, images)
    assert len(got) == len(images) and len(set(alone)) > len(images) // 2  # frames really differ
    assert got == alone


def test_the_overwrite_check_fails_when_buffers_are_handed_on_without_a_lease(tmp_path, monkeypatch):
    """The check above can fail: with the stitch buffers rotated as a bare ring of two (the old
    agreement, made too small), later frames overwrite earlier ones and the scores differ."""
    from edge import buffers

    def ring_acquire(self, timeout=None):  # hands out buffers in turn, leased or not
        self._turn = (getattr(self, "_turn", -1) + 1) % 2
        return buffers.Lease(self._ring[self._turn], self)

    monkeypatch.setattr(buffers.BufferPool, "acquire", ring_acquire)
    monkeypatch.setattr(buffers.BufferPool, "_give_back", lambda self, a: None)
    real_init = buffers.BufferPool.__init__

    def init(self, shape, dtype, count):
        real_init(self, shape, dtype, count)
        self._ring = [np.zeros(shape, dtype) for _ in range(2)]
    monkeypatch.setattr(buffers.BufferPool, "__init__", init)
    images = _frames()
    got, alone = _run_through_station(tmp_path, monkeypatch, images)
    assert got != alone


def test_overlapped_frames_of_different_sizes_are_stitched_with_their_own_layout(tmp_path, monkeypatch):
    """Frame n+1 is cut into the runner before frame n is collected: with sizes alternating
    (64x64, then 40x52, reflect-padded to the 64x64 input) frame n must still be stitched and
    cropped as frame n (before: with frame n+1's layout, so at the wrong size)."""
    images = []
    for img in _frames(16):
        images.append(img if len(images) % 2 == 0 else np.ascontiguousarray(img[:40, :52]))
    got, alone = _run_through_station(tmp_path, monkeypatch, images)
    assert len(got) == len(images) and got == alone


def test_a_runner_that_fails_half_way_through_open_frees_what_it_allocated(tmp_path, monkeypatch):
    """The engine takes no input of the sidecar's shape: open() raises after the CUDA memory layer
    was opened; a with-block never calls __exit__ then, so open() itself must free it."""
    runner, mem = _runner(tmp_path, monkeypatch, max_batch=0)
    with pytest.raises(InputError):
        with runner:
            pass
    assert mem.closed and runner.mem is None and not runner.is_open
