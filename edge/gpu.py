"""Which NVIDIA GPU is here, without touching a CUDA runtime (safe on machines with none).

Used to fill an engine's sidecar at build time and to check it before edge-run loads the engine:
a TensorRT runtime started without a GPU can crash the process, so the check comes first.
"""

from __future__ import annotations

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
        if index >= pynvml.nvmlDeviceGetCount():
            return None
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
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
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--id={index}", "--query-gpu=name,compute_cap,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = [p.strip() for p in out.stdout.strip().split(",")]
    if out.returncode != 0 or len(parts) != 3:
        return None
    return GpuInfo(*parts)


def probe_gpu(index: int = 0) -> GpuInfo | None:
    """The GPU at `index`, or None: NVML (nvidia-ml-py) first, then nvidia-smi."""
    return _nvml(index) or _nvidia_smi(index)
