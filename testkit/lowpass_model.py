"""An analytic low-pass autoencoder as ONNX, for tests and benchmarks whose verdicts must not
depend on a trained model: python -m testkit.lowpass_model out.onnx

Needs the `onnx` package (dev extra); the station itself does not. (The packaged demo model is
trained: python -m train.demo_model.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge.recipe import RECIPE_KEY, Recipe, recipe_json
from edge.schema import load

DEMO_RECIPE = {
    "model_family": "demo-lowpass-ae",
    "preprocess": {"grayscale": True, "scale": 1 / 255, "tile_overlap": 0},
    "detect": {"method": "dct_fusion", "dct_fusion": {"patch": 32, "stride": 32, "block": 8, "epsilon": 0.03, "gamma": 3.0}},
    "decision": {"min_area": 16},
    "training": {"data": "none: fixed analytic weights (4x4 average-pool encoder, bilinear decoder)"},
}


def build_lowpass_autoencoder(size: int = 256, factor: int = 4, recipe: dict | None = None, batch: int | None = None):
    """An autoencoder with analytic weights: Conv(k=s=factor, weights 1/factor^2) -> Resize(linear)."""
    import onnx
    from onnx import TensorProto, helper

    b = batch if batch else "batch"
    weight = np.full((1, 1, factor, factor), 1.0 / factor**2, np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "enc_w"], ["code"], kernel_shape=[factor, factor], strides=[factor, factor]),
        helper.make_node("Resize", ["code", "", "scales"], ["reconstruction"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
    ]
    graph = helper.make_graph(
        nodes, "lowpass_autoencoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [b, 1, size, size])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, [b, 1, size, size])],
        initializer=[helper.make_tensor("enc_w", TensorProto.FLOAT, weight.shape, weight.flatten()),
                     helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, factor, factor])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edge-inspect")
    model.ir_version = 8
    rec = load(Recipe, recipe if recipe is not None else DEMO_RECIPE, "demo recipe")
    helper.set_model_props(model, {RECIPE_KEY: recipe_json(rec)})
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    import onnx

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m testkit.lowpass_model out.onnx")
    out = Path(args[0])
    onnx.save(build_lowpass_autoencoder(), out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
