"""ONNX -> serialized engine with whichever TensorRT flavour is installed (edge.backends.trt_flavours).

Precision is already in the graph (build_engines.precision, calib.quantize), so the network is
strongly typed on every flavour; only TensorRT 10's legacy calibrator path sets precision flags.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.backends.trt_flavours import Flavour
from edge.errors import InputError
from edge.gpu import GpuInfo

# compute capabilities a default TensorRT-RTX engine runs on (its documentation: 8.0 and later,
# Turing only on request); the enum tells which this version knows
RTX_DEFAULT_SM = ("SM80", "SM86", "SM89", "SM120", "SM121")
PROFILES = 2  # = edge.backends.tensorrt.TensorRTRunner.SLOTS (build_engines may not import the runner's module)


@dataclass
class BuildOptions:
    workspace_mib: int | None = None
    hw_compat: str = "none"             # none | ampere+ | same-cc
    version_compatible: bool = False
    dla_core: int | None = None
    timing_cache: Path | None = None
    calibrator: object | None = None    # TensorRT 10 IInt8EntropyCalibrator2 (legacy INT8 path)
    profile_shape: tuple[int, int, int, int] | None = None  # for inputs with dynamic dims
    target_cc: str | None = None        # the station GPU's compute capability, when not this machine's


@dataclass
class BuiltEngine:
    data: bytes
    inputs: list[dict]
    outputs: list[dict]
    layers: dict
    target: dict
    build_s: float
    notes: list[str] = field(default_factory=list)


def _progress_monitor(trt, stream):
    """Top-level builder phases on one line each, with the time they took."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.started = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.started[phase_name] = time.perf_counter()
            if parent_phase is None:
                print(f"building: {phase_name} ...", file=stream, flush=True)

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            t = self.started.pop(phase_name, None)
            if t is not None and not self.started:
                print(f"building: {phase_name} done in {time.perf_counter() - t:.2f} s", file=stream, flush=True)

    return Monitor()


def _dtype(dt) -> str:
    return {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
            "BOOL": "bool", "UINT8": "uint8", "BF16": "bfloat16", "FP8": "fp8"}.get(dt.name, dt.name.lower())


def layer_summary(trt, net) -> dict:
    """Precision per layer group: compute layers (convolution, deconvolution, matrix multiply) by the
    precision they run in (int8 when fed by a DequantizeLinear, else their input type), the rest by
    output type. From the network, since inspecting the built engine needs a GPU."""
    producer = {}
    for i in range(net.num_layers):
        layer = net.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    compute = {"CONVOLUTION": "convolution", "DECONVOLUTION": "deconvolution", "MATRIX_MULTIPLY": "matmul"}
    groups: dict[str, dict[str, int]] = {}
    for i in range(net.num_layers):
        layer = net.get_layer(i)
        kind = layer.type.name
        if kind in ("CONSTANT", "QUANTIZE", "DEQUANTIZE", "SHUFFLE"):
            continue  # bookkeeping layers TensorRT folds away
        if kind in compute:
            src = producer.get(layer.get_input(0).name)
            prec = "int8" if src is not None and src.type.name == "DEQUANTIZE" else _dtype(layer.get_input(0).dtype)
            group = compute[kind]
        else:
            prec, group = _dtype(layer.get_output(0).dtype), "other"
        g = groups.setdefault(group, {})
        g[prec] = g.get(prec, 0) + 1
    return groups


def _io(net, profile_shape) -> tuple[list[dict], list[dict]]:
    def desc(t, is_input):
        shape = list(t.shape)
        if is_input and profile_shape and any(d < 0 for d in shape):
            shape = list(profile_shape)
        return {"name": t.name, "shape": shape, "dtype": _dtype(t.dtype)}
    return ([desc(net.get_input(i), True) for i in range(net.num_inputs)],
            [desc(net.get_output(i), False) for i in range(net.num_outputs)])


FULL_TENSORRT_HINT = ("full TensorRT builds for it: JetPack's on a Jetson, elsewhere `pip install -e '.[tensorrt]'` "
                      "where NVIDIA's package index is reachable (pypi.nvidia.com), then build on the station")


def _target(flavour: Flavour, cfg, opts: BuildOptions, gpu: GpuInfo | None, where: str) -> dict:
    trt = flavour.trt
    station_cc = opts.target_cc or (gpu.compute_capability if gpu else None)
    if flavour.name == "tensorrt" and opts.target_cc and (gpu is None or gpu.compute_capability != opts.target_cc):
        raise InputError(where, "--target-cc", f"{flavour.describe()} builds for the GPU at hand "
                                               f"({gpu.name + ' ' + gpu.compute_capability if gpu else 'none found'}), "
                                               f"not {opts.target_cc}: build on the station")
    if flavour.name == "tensorrt-rtx" and station_cc is not None and opts.hw_compat != "same-cc":
        sm = "SM" + station_cc.replace(".", "")
        if sm not in RTX_DEFAULT_SM or not hasattr(trt.ComputeCapability, sm):
            listed = ", ".join(f"{s[2:-1]}.{s[-1]}" for s in RTX_DEFAULT_SM if hasattr(trt.ComputeCapability, s))
            what = f"this machine's GPU ({gpu.name}, {station_cc})" if not opts.target_cc and gpu else station_cc
            raise InputError(where, "--target-cc" if opts.target_cc else "--flavour",
                             f"{flavour.describe()} targets compute capability {listed}, not {what} "
                             f"(Hopper H100/H200 is 9.0, Jetson Orin 8.7): its engine would not run there; "
                             + FULL_TENSORRT_HINT)
    target = {"hardware_compatibility": opts.hw_compat, "version_compatible": opts.version_compatible,
              "dla_core": opts.dla_core, "gpu": gpu.name if gpu else None,
              "compute_capability": gpu.compute_capability if gpu else None}
    if flavour.name == "tensorrt-rtx":
        if opts.hw_compat == "same-cc":
            if gpu is None:
                raise InputError(where, "--hw-compat", "same-cc builds for the GPU at hand and none was found; "
                                                       "use ampere+ (the default portable set) on a CPU-only machine")
            sm = "SM" + gpu.compute_capability.replace(".", "")
            if not hasattr(trt.ComputeCapability, sm):
                raise InputError(where, "--hw-compat", f"{flavour.describe()} cannot build for compute capability "
                                                       f"{gpu.compute_capability} ({gpu.name})")
            sms = [sm]
        else:
            sms = [s for s in RTX_DEFAULT_SM if hasattr(trt.ComputeCapability, s)]
        cfg.num_compute_capabilities = len(sms)
        for i, s in enumerate(sms):
            cfg.set_compute_capability(getattr(trt.ComputeCapability, s), i)
        target["compute_capabilities"] = [f"{s[2:-1]}.{s[-1]}" for s in sms]
        return target
    if gpu is None:
        raise InputError(where, "--flavour", f"{flavour.describe()} builds on the station's GPU and none was found "
                                             "(TensorRT-RTX builds without one: --flavour tensorrt-rtx)")
    # looked up by name and only for the level asked for: SAME_COMPUTE_CAPABILITY exists from
    # TensorRT 10.9 on, and JetPack 6 ships 10.3
    name = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}[opts.hw_compat]
    level = getattr(trt.HardwareCompatibilityLevel, name, None)
    if level is None:
        raise InputError(where, "--hw-compat", f"{flavour.describe()} has no hardware compatibility level {name} "
                                               "(same-cc needs TensorRT 10.9 or later)")
    cfg.hardware_compatibility_level = level
    return target


def build_engine(onnx_bytes: bytes, flavour: Flavour, opts: BuildOptions, gpu: GpuInfo | None,
                 where: str, stream=None) -> BuiltEngine:
    trt = flavour.trt
    stream = stream or sys.stderr
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    strongly_typed = opts.calibrator is None and not flavour.always_strongly_typed
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    net = builder.create_network(flags)
    parser = trt.OnnxParser(net, logger)
    if not parser.parse(onnx_bytes):
        errs = [parser.get_error(i) for i in range(parser.num_errors)]
        first = errs[0] if errs else None
        detail = f"node {first.node_name()!r} ({first.node_operator()}): {first.desc()}" if first else "unknown error"
        raise InputError(where, None, f"{flavour.describe()} cannot parse the ONNX graph: {detail}")
    cfg = builder.create_builder_config()
    notes = []
    target = _target(flavour, cfg, opts, gpu, where)
    if opts.workspace_mib:
        cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
    if opts.version_compatible:
        cfg.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if opts.dla_core is not None:
        if flavour.name != "tensorrt" or builder.num_DLA_cores == 0:
            raise InputError(where, "--dla-core", f"no DLA core here ({flavour.describe()}): DLA exists on Jetson "
                                                  "AGX Orin / Orin NX with JetPack's TensorRT")
        if opts.dla_core >= builder.num_DLA_cores:
            raise InputError(where, "--dla-core", f"expected 0..{builder.num_DLA_cores - 1}, got {opts.dla_core}")
        cfg.default_device_type = trt.DeviceType.DLA
        cfg.DLA_core = opts.dla_core
        cfg.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    if opts.calibrator is not None:
        if not flavour.has_calibrators:
            raise InputError(where, "--int8", f"{flavour.describe()} has no calibrators: INT8 needs a Q/DQ graph")
        cfg.set_flag(trt.BuilderFlag.INT8)
        cfg.set_flag(trt.BuilderFlag.FP16)
        cfg.int8_calibrator = opts.calibrator
    if net.num_inputs and any(d < 0 for d in net.get_input(0).shape):
        if opts.profile_shape is None:
            raise InputError(where, "--shape", "the model input has dynamic dims: give --shape HxW and --batch N")
        s = tuple(opts.profile_shape)
        # one profile per execution context the station runs at once: two contexts of a
        # dynamic-shape engine may not share a profile (edge.backends.tensorrt.SLOTS)
        for _ in range(PROFILES):
            profile = builder.create_optimization_profile()
            profile.set_shape(net.get_input(0).name, s, s, s)
            cfg.add_optimization_profile(profile)
    cache = None
    if opts.timing_cache is not None:
        if flavour.has_build_timing_cache:
            data = opts.timing_cache.read_bytes() if opts.timing_cache.is_file() else b""
            cache = cfg.create_timing_cache(data)
            cfg.set_timing_cache(cache, False)
            notes.append(f"timing cache {opts.timing_cache} ({'reused' if data else 'new'})")
        else:
            notes.append("timing cache not used: TensorRT-RTX has none at build time (a deprecated no-op that would "
                         "also need a GPU); its kernels are compiled and cached on the station at run time")
    monitor = _progress_monitor(trt, stream)  # referenced until the build ends: TensorRT holds no reference
    cfg.progress_monitor = monitor
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(net, cfg)
    build_s = time.perf_counter() - t0
    if serialized is None:
        raise RuntimeError(f"{flavour.describe()} failed to build the engine (run with EDGE_DEBUG=1 for its log)")
    if cache is not None:
        tmp = opts.timing_cache.with_name(opts.timing_cache.name + ".tmp")
        tmp.write_bytes(bytes(memoryview(cache.serialize())))
        tmp.replace(opts.timing_cache)
    inputs, outputs = _io(net, opts.profile_shape)
    return BuiltEngine(bytes(memoryview(serialized)), inputs, outputs, layer_summary(trt, net), target, build_s, notes)
