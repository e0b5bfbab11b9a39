"""One model call per frame: a whole-frame model (dynamic height and width) gets every frame, of
any size and aspect ratio, in one call, padded to the sides the network takes; ONNX Runtime is
real and as strict as a U-Net (a side that is not a multiple of 16 fails inside the graph)."""

import json

import numpy as np
import pytest
from conftest import run_cli, textured

from edge.backends.onnxruntime import OnnxRuntimeRunner
from edge.inspector import Inspector
from edge.recipe import RECIPE_KEY, load_recipe


def _strict_model(path, multiple=16):
    """|x - upsample(maxpool(x))| with a 16x16 pool: like a U-Net's skip connections, it only
    takes sides that are multiples of 16, and its output is a map of the frame's size."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MaxPool", ["image"], ["pooled"], kernel_shape=[multiple, multiple],
                              strides=[multiple, multiple]),
             helper.make_node("Resize", ["pooled", "", "scales"], ["up"], mode="nearest"),
             helper.make_node("Sub", ["image", "up"], ["diff"]),
             helper.make_node("Abs", ["diff"], ["map"])]
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, multiple, multiple])
    graph = helper.make_graph(nodes, "strict", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              [1, 1, "h", "w"])],
                              [helper.make_tensor_value_info("map", TensorProto.FLOAT, [1, 1, "h", "w"])],
                              initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    recipe = {"model_family": "strict", "preprocess": {"input_multiple": multiple, "tile_overlap": 32},
              "detect": {"method": "probability", "probability": {"threshold": 0.99}},
              "decision": {"rule": "score", "score_threshold": 0.99}}
    helper.set_model_props(model, {RECIPE_KEY: json.dumps(recipe)})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("h,w", [(100, 70), (512, 512), (130, 600), (333, 271)])
def test_every_frame_is_one_call_padded_to_the_multiple_and_the_map_is_the_frames(tmp_path, h, w):
    path = _strict_model(tmp_path / "m.onnx")
    with OnnxRuntimeRunner(path) as runner:
        assert runner.input_shape == (1, 1, 0, 0)
        ins = Inspector(runner, load_recipe(runner.metadata, str(path)), "cam", "t")
        calls = []
        infer = runner.infer
        runner.infer = lambda batch: calls.append(batch.shape) or infer(batch)
        frame = (textured(h + w, h, w) * 255).astype(np.uint8)
        x = ins.pre.to_model_space(frame)
        rec = ins.reconstruct(x)
        assert calls == [(1, 1, -(-h // 16) * 16, -(-w // 16) * 16)]
        assert rec.shape == (h, w) and np.isfinite(rec).all()
        a = ins.analyse(x, rec, (h, w))
        assert a.verdict in ("OK", "NG")
        with pytest.raises(Exception, match="broadcast"):  # the graph refuses a side not a multiple of 16
            infer(np.zeros((1, 1, 100, 70), np.float32))


def test_edge_run_inspects_frames_of_mixed_sizes_with_a_whole_frame_model(tmp_path):
    import cv2
    path = _strict_model(tmp_path / "m.onnx")
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, (h, w) in enumerate([(100, 600), (257, 190), (64, 64)]):
        cv2.imwrite(str(parts / f"p{i}.png"), (textured(i, h, w) * 255).astype(np.uint8))
    cfg = tmp_path / "station.yaml"
    cfg.write_text(f"station: t\ncameras:\n  cam0:\n    source: file://{parts}\nmodel:\n  path: {path}\n")
    res = run_cli(["--config", str(cfg), "--frames", "3"])
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["verdict"] in ("OK", "NG") for x in lines] == [True] * 3


def test_onnx_runtime_workers_spin_only_while_a_run_lasts(tmp_path):
    """Parked workers cost a wake-up per operator (docs/BENCHMARKS.md); spinning after a run would
    take the cores detection and acquisition need. The runner asks for both halves."""
    path = _strict_model(tmp_path / "m.onnx")
    for park, spin in ((False, "1"), (True, "0")):
        with OnnxRuntimeRunner(path, park_workers=park) as runner:
            opts = runner._session.get_session_options()
            assert opts.get_session_config_entry("session.intra_op.allow_spinning") == spin
            assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
