"""Precision lives in the ONNX graph: FP16 by ModelOpt AutoCast, INT8 by Q/DQ (calib.quantize).

TensorRT 11 and TensorRT-RTX build strongly typed networks only, so the graph must already say
which tensors are FP16; doing the conversion here for every flavour gives one behaviour and lets
ONNX Runtime check the converted graph before an engine exists.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from calib.quantize import copy_metadata, quiet
from edge.errors import InputError

# Kept in FP32: exponentials, reductions and normalisations overflow or lose the small
# differences the residual analysis depends on. Convolutions, activations and pooling go to FP16.
FP32_OPS = ["Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Div", "Softmax", "LogSoftmax", "ReduceMean",
            "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceMax", "ReduceMin", "ReduceProd",
            "InstanceNormalization", "LayerNormalization", "GroupNormalization", "Sigmoid"]


def to_fp16(onnx_path: Path, out_path: Path, samples: np.ndarray | None = None) -> Path:
    """FP16 graph with FP32 inputs and outputs. With `samples` (N, C, H, W) AutoCast also runs the
    model and keeps every node whose values exceed FP16's safe range in FP32."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except ImportError as e:
        raise InputError("<command line>", "--fp16", f"FP16 conversion needs NVIDIA ModelOpt ({e}); "
                                                     "pip install -e '.[build]'") from None
    src = onnx.load(str(onnx_path))
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        calib = None
        if samples is not None:
            calib = str(Path(tmp) / "samples.npz")
            from calib.images import whole_batches
            from calib.quantize import graph_batch
            # AutoCast runs them in batches of the graph's size: a multiple of it (16 fitted only N dividing 16)
            np.savez(calib, **{src.graph.input[0].name: whole_batches(samples, graph_batch(src), 16)})
        try:
            with quiet(log):
                m = convert_to_mixed_precision(str(onnx_path), low_precision_type="fp16", keep_io_types=True,
                                               op_types_to_exclude=FP32_OPS, calibration_data=calib)
        except Exception as e:
            raise RuntimeError(f"FP16 conversion failed: {type(e).__name__}: {e}") from None
    copy_metadata(src, m)
    onnx.save(m, str(out_path))
    return Path(out_path)


def graph_precision(model) -> str:
    """fp32, fp16 or int8 as the graph itself says (Q/DQ nodes -> int8, FP16 weights -> fp16)."""
    from onnx import TensorProto

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    return "fp32"
