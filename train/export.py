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
MAX_TILES = 1 << 16  # most tiles one call of a tiled export takes (a 16k x 16k frame in 128-px tiles fits)


class MirrorMean(torch.nn.Module):
    """Test-time mirroring inside the exported graph: the map is the mean of the network's map of
    each input and of its mirror image (mirrored back), both in one pass of twice the batch, so
    the station still makes one call per frame. `dims`: the spatial axes mirrored (2 = rows)."""

    def __init__(self, net: torch.nn.Module, dims: tuple[int, ...]):
        super().__init__()
        self.net, self.dims = net, dims

    def _mirror(self, t: torch.Tensor) -> torch.Tensor:
        # a gather with reversed indices, not torch.flip: OpenVINO runs flip's negative-step slices
        # slowly (bf16, 9 tiles of 256: 37 against 28 ms a call; one pass of 18 tiles is 27)
        for d in self.dims:
            t = t.index_select(d, torch.arange(t.shape[d] - 1, -1, -1, device=t.device))
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        y = self.net(torch.cat([x, self._mirror(x)]))
        return (y[:n] + self._mirror(y[n:])) * 0.5


def export_onnx(model: torch.nn.Module, size: int, path: Path, recipe: dict, multiple: int | None = None,
                channels: int = 1) -> Path:
    """Input `image`, output `output`; recipe validated first. A tiled model takes (N, 1, size,
    size) for any N: the station sends all tiles of a frame in one call, with outputs identical to
    one call per tile. With `multiple`, a whole-frame model: (1, 1, H, W) for any H and W that are
    multiples of it (a fully convolutional network on the frame itself). `channels`: the input's
    (2 for a two-scale model: the grey tile and its scale plane)."""
    import onnx

    rec = load(Recipe, recipe, "export recipe")
    model = model.eval().cpu()
    if multiple:
        dummy = torch.rand(1, channels, size, size)
        h = torch.export.Dim("h", min=1, max=MAX_SIDE // multiple)
        w = torch.export.Dim("w", min=1, max=MAX_SIDE // multiple)
        dynamic: tuple = ({2: multiple * h, 3: multiple * w},)
    else:
        dummy = torch.rand(2, channels, size, size)  # not 1: the exporter would take a batch of 1 as a constant
        dynamic = ({0: torch.export.Dim("tiles", min=1, max=MAX_TILES)},)
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
           multiple: int | None = None, channels: int = 1) -> float:
    """Largest |PyTorch - ONNX Runtime| over random inputs: of other, non-square sizes for a
    whole-frame model, of several tiles at once for a tiled one."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    model = model.eval().cpu()
    shapes = [(1, size, size)]
    if multiple:
        shapes += [(1, size + multiple, 2 * size), (1, max(multiple, size // 2), size + 3 * multiple)]
    else:  # all tiles of a frame in one call
        shapes += [(7, size, size), (25, size, size)]
    for i in range(samples):
        n, h, w = shapes[i % len(shapes)]
        x = rng.random((n, channels, h, w), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(sess.run(None, {"image": x})[0] - ref).max()))
    return worst
