"""The station runtime: frames in, OK/NG verdicts out. Never imports torch."""

import os

# Numba's OpenMP workers otherwise spin after each parallel region and take the cores ONNX
# Runtime needs next (measured: 0.55x -> 0.73x of the bare session on 2 cores, see
# docs/BENCHMARKS.md). Must be set before libgomp loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
