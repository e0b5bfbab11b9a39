"""ONNX models for benchmarks (speed only: weights are random, seeded)."""

from __future__ import annotations

import numpy as np


def conv_autoencoder(size: int = 256, widths=(16, 32, 64), batch: int | None = None, seed: int = 0,
                     trained_like: bool = True):
    """A 3-down / 3-up convolutional autoencoder (3x3 convs, stride 2, ReLU, sigmoid output),
    about 80 M multiply-adds per 256x256 tile: the order of seed 002's ReNet-D.

    With random weights its output is noise, which marks every patch and sends detection down its
    worst-case path. trained_like=True returns lowpass(x) + 1e-3 * CAE(x): the same compute, but a
    reconstruction that behaves like a trained model's, so detection does realistic work."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x, cin = "image", 1

    def param(name, shape):
        w = (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32)
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, shape, w.flatten()))
        return name

    for k, cout in enumerate(widths):
        nodes.append(helper.make_node("Conv", [x, param(f"e{k}_w", [cout, cin, 3, 3]), param(f"e{k}_b", [cout])],
                                      [f"e{k}"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"e{k}"], [f"e{k}r"]))
        x, cin = f"e{k}r", cout
    outs = list(reversed(widths[:-1])) + [1]
    for k, cout in enumerate(outs):
        nodes.append(helper.make_node("ConvTranspose", [x, param(f"d{k}_w", [cin, cout, 4, 4]), param(f"d{k}_b", [cout])],
                                      [f"d{k}"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
        act = "Relu" if k < len(outs) - 1 else "Sigmoid"
        last = "cae_out" if trained_like else "reconstruction"
        nodes.append(helper.make_node(act, [f"d{k}"], [f"d{k}a" if k < len(outs) - 1 else last]))
        x, cin = f"d{k}a", cout
    if trained_like:
        pool = np.full((1, 1, 4, 4), 1 / 16, np.float32)
        inits += [helper.make_tensor("lp_w", TensorProto.FLOAT, pool.shape, pool.flatten()),
                  helper.make_tensor("lp_scales", TensorProto.FLOAT, [4], [1, 1, 4, 4]),
                  helper.make_tensor("noise_gain", TensorProto.FLOAT, [], [1e-3])]
        nodes += [helper.make_node("Conv", ["image", "lp_w"], ["lp_code"], kernel_shape=[4, 4], strides=[4, 4]),
                  helper.make_node("Resize", ["lp_code", "", "lp_scales"], ["lowpass"], mode="linear"),
                  helper.make_node("Mul", ["cae_out", "noise_gain"], ["cae_small"]),
                  helper.make_node("Add", ["lowpass", "cae_small"], ["reconstruction"])]
    b = batch if batch else "batch"
    graph = helper.make_graph(nodes, "bench_cae",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [b, 1, size, size])],
                              [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, [b, 1, size, size])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
