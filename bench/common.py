"""Shared helpers for the benchmarks: timing and reporting."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def cpu_runner(label: str) -> tuple[str, str]:
    """(model.backend, model.precision) of a benchmark's runner label: onnxruntime, openvino-fp32,
    openvino-bf16 (or a bare backend name, precision auto)."""
    backend, _, precision = label.partition("-")
    return backend, precision or "auto"


def median_time(fn, repeat: int, warmup: int = 2) -> float:
    """Median wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def save(name: str, data: dict):
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine(), "git": _git(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"wrote {path}")


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return ""
