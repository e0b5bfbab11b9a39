"""Which NVIDIA GPU the station will run on, without starting TensorRT (safe on machines with none).

Used to fill an engine's sidecar at build time and to check it before edge-run loads the engine:
a TensorRT runtime started without a GPU can crash the process, so the check comes first.

CUDA device `index` is what the runner uses, and CUDA numbers devices its own way: only those in
CUDA_VISIBLE_DEVICES, fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID. So CUDA itself is asked
first (cuda-python's runtime query, which fails cleanly without a driver); NVML and nvidia-smi,
which number by PCI bus, are the fallback, with the index mapped through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.6"
    driver: str = ""

    @property
    def cc_tuple(self) -> tuple[int, int]:
        return parse_cc(self.compute_capability)


def parse_cc(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def _cuda_runtime(index: int) -> GpuInfo | None:
    try:
        try:
            from cuda.bindings import runtime as rt
        except ImportError:
            from cuda import cudart as rt
    except ImportError:
        return None
    try:
        err, count = rt.cudaGetDeviceCount()
        if err != rt.cudaError_t.cudaSuccess or index >= count:
            return None  # no driver, no device: "insufficient driver" here
        err, prop = rt.cudaGetDeviceProperties(index)
        if err != rt.cudaError_t.cudaSuccess:
            return None
        err, driver = rt.cudaDriverGetVersion()
        name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
        return GpuInfo(name, f"{prop.major}.{prop.minor}", f"CUDA {driver // 1000}.{driver % 1000 // 10}")
    except Exception:
        return None


def _pycuda(index: int) -> GpuInfo | None:
    """JetPack stations often have pycuda and nothing else of CUDA's Python side."""
    try:
        import pycuda.driver as drv
    except ImportError:
        return None
    try:
        drv.init()
        if index >= drv.Device.count():
            return None
        dev = drv.Device(index)
        major, minor = dev.compute_capability()
        version = drv.get_driver_version()
        return GpuInfo(dev.name(), f"{major}.{minor}", f"CUDA {version // 1000}.{version % 1000 // 10}")
    except Exception:  # pycuda's LogicError / RuntimeError without a driver
        return None


def pci_id(index: int) -> str | None:
    """What NVML / nvidia-smi call CUDA device `index`: the index-th entry of CUDA_VISIBLE_DEVICES
    (an index or a GPU UUID), or the index itself when the variable is unset; None when CUDA sees
    no such device. Without CUDA_DEVICE_ORDER=PCI_BUS_ID on a host of unlike GPUs the two orders
    can differ: there the CUDA query above is the one to trust."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return str(index)
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    return entries[index] if index < len(entries) else None


def _nvml(index: int) -> GpuInfo | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no GPU here
        return None
    try:
        ident = pci_id(index)
        if ident is None:
            return None
        if ident.isdigit():
            if int(ident) >= pynvml.nvmlDeviceGetCount():
                return None
            h = pynvml.nvmlDeviceGetHandleByIndex(int(ident))
        else:
            h = pynvml.nvmlDeviceGetHandleByUUID(ident)
        name = pynvml.nvmlDeviceGetName(h)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
        driver = pynvml.nvmlSystemGetDriverVersion()
        as_str = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731 (old bindings return bytes)
        return GpuInfo(as_str(name), f"{major}.{minor}", as_str(driver))
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _nvidia_smi(index: int) -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    ident = pci_id(index)
    if not exe or ident is None:
        return None
    try:
        out = subprocess.run([exe, f"--id={ident}", "--query-gpu=name,compute_cap,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = [p.strip() for p in out.stdout.strip().split(",")]
    if out.returncode != 0 or len(parts) != 3:
        return None
    if not re.fullmatch(r"\d+\.\d+", parts[1]):  # Jetson's nvidia-smi prints [N/A] for what it does not know
        return None
    return GpuInfo(*parts)


def probe_gpu(index: int = 0) -> GpuInfo | None:
    """CUDA device `index` (as the runner will number it), or None: the CUDA runtime first, then
    pycuda, NVML (nvidia-ml-py) and nvidia-smi."""
    return _cuda_runtime(index) or _pycuda(index) or _nvml(index) or _nvidia_smi(index)
