"""INT8 post-training quantization of an ONNX model to Q/DQ with NVIDIA ModelOpt, on the CPU.

Entropy calibration (TensorRT's classic choice) or max. The output keeps the input model's
metadata (the inspection recipe), which ModelOpt drops. The quantized model runs in ONNX Runtime
too, so its accuracy is checked before any engine is built (build_engines.gate).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge.errors import InputError


def _need_modelopt():
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as e:
        raise InputError("<command line>", "--int8", f"INT8 quantization needs NVIDIA ModelOpt ({e}); "
                                                     "pip install -e '.[build]'") from None
    return quantize


class _Progress:
    """ONNX Runtime CalibrationDataReader that feeds one batch of the graph's size at a time (a
    graph fixed at batch N takes N tiles a run) and shows how far it got."""

    def __init__(self, name: str, data: np.ndarray, show, batch: int = 1):
        self.name, self.data, self.show, self.i, self.batch = name, data, show, 0, batch

    def get_next(self):
        if self.i >= len(self.data):
            return None
        x = self.data[self.i:self.i + self.batch]
        self.i += self.batch
        if self.show:
            self.show(min(self.i, len(self.data)), len(self.data))
        return {self.name: x}

    def rewind(self):
        self.i = 0

    def set_range(self, start_index: int, end_index: int):  # ORT asks for it on some paths
        self.i = start_index


def copy_metadata(src, dst):
    del dst.metadata_props[:]
    for p in src.metadata_props:
        dst.metadata_props.add(key=p.key, value=p.value)


COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def graph_batch(model) -> int:
    """The graph input's fixed batch size, or 1 when it is dynamic."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else 1


def output_heads(model) -> list[str]:
    """Names of the compute nodes that produce the graph outputs (through element-wise ops such as
    Sigmoid or Add). They stay in floating point: the output is what the residual analysis and the
    calibrated thresholds read, and 8 bits there flip verdicts near the threshold."""
    producer = {o: n for n in model.graph.node for o in n.output}
    heads, todo, seen = [], [o.name for o in model.graph.output], set()
    while todo:
        n = producer.get(todo.pop())
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        if n.op_type in COMPUTE_OPS:
            heads.append(n.name)
        else:
            todo.extend(n.input)
    return heads


def quantize_int8(onnx_path: Path, data: np.ndarray, out_path: Path, method: str = "entropy",
                  progress=None, keep_heads: bool = True) -> Path:
    """Q/DQ model at out_path from calibration tiles `data` (N, C, H, W); with keep_heads the
    output layers stay FP32 (see output_heads)."""
    import re

    import onnx

    from .images import whole_batches

    quantize = _need_modelopt()
    src = onnx.load(str(onnx_path))
    exclude = [f"^{re.escape(n)}$" for n in output_heads(src)] if keep_heads else None
    name = src.graph.input[0].name
    batch = graph_batch(src)
    data = whole_batches(data, batch)
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out = Path(tmp) / "q.onnx"
        try:
            with quiet(log):
                quantize(str(onnx_path), quantize_mode="int8", calibration_data_reader=_Progress(name, data, progress, batch),
                         calibration_method=method, calibration_eps=["cpu"], output_path=str(tmp_out),
                         nodes_to_exclude=exclude,
                         high_precision_dtype="fp32", log_level="ERROR")
        except Exception as e:
            tail = log.getvalue().strip().splitlines()[-3:]
            raise RuntimeError(f"ModelOpt quantization failed: {type(e).__name__}: {e} {' | '.join(tail)}") from None
        q = onnx.load(str(tmp_out))
    copy_metadata(src, q)
    onnx.save(q, str(out_path))
    return Path(out_path)


def print_progress(label: str, stream=None):
    """show(i, n) printing `label: i/n` at every tenth; the stream is bound now, since
    quantize_int8 redirects sys.stderr while it runs."""
    s = stream or sys.stderr

    def show(i, n):
        if i == n or i % max(1, n // 10) == 0:
            print(f"{label}: {i}/{n}", file=s, flush=True)
    return show


@contextlib.contextmanager
def quiet(log: io.StringIO):
    """ModelOpt and ONNX Runtime narrate on stdout, stderr and their own loggers; keep it for errors."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        logging.disable(logging.NOTSET)
