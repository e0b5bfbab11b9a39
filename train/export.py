"""ONNX export with the inspection recipe in the metadata, and the PyTorch/ONNX Runtime parity check."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from edge.recipe import RECIPE_KEY, Recipe, recipe_json
from edge.schema import load

OPSET = 17


MAX_SIDE = 16384  # largest frame side a whole-frame export accepts


def export_onnx(model: torch.nn.Module, size: int, path: Path, recipe: dict, multiple: int | None = None) -> Path:
    """Input `image`, output `output`; recipe validated first. Fixed input (1, 1, size, size), or
    with `multiple` a whole-frame model: (1, 1, H, W) for any H and W that are multiples of it
    (a fully convolutional network; the station makes one call per frame)."""
    import onnx

    rec = load(Recipe, recipe, "export recipe")
    model = model.eval().cpu()
    dummy = torch.rand(1, 1, size, size)
    dynamic = None
    if multiple:
        h = torch.export.Dim("h", min=1, max=MAX_SIDE // multiple)
        w = torch.export.Dim("w", min=1, max=MAX_SIDE // multiple)
        dynamic = ({2: multiple * h, 3: multiple * w},)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():  # the exporter narrates its passes
        torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["output"],
                          opset_version=OPSET, dynamo=True, external_data=False, dynamic_shapes=dynamic)
    m = onnx.load(str(path))
    onnx.helper.set_model_props(m, {RECIPE_KEY: recipe_json(rec)})
    onnx.save(m, str(path))
    return path


def set_recipe(path: Path, recipe: dict):
    """Replace the recipe in an exported model (after calibration)."""
    import onnx

    rec = load(Recipe, recipe, "calibrated recipe")
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, {RECIPE_KEY: recipe_json(rec)})
    onnx.save(m, str(path))


def parity(model: torch.nn.Module, path: Path, size: int, samples: int = 3, seed: int = 0,
           multiple: int | None = None) -> float:
    """Largest |PyTorch - ONNX Runtime| over random inputs (a whole-frame model: also of other,
    non-square sizes)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    model = model.eval().cpu()
    shapes = [(size, size)]
    if multiple:
        shapes += [(size + multiple, 2 * size), (max(multiple, size // 2), size + 3 * multiple)]
    for i in range(samples):
        x = rng.random((1, 1, *shapes[i % len(shapes)]), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(sess.run(None, {"image": x})[0] - ref).max()))
    return worst
