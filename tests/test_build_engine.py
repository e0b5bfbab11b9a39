"""build-engine: real engines from the project's own models, built by TensorRT-RTX on this CPU
(no GPU needed to build), FP16 / INT8 Q/DQ graphs checked under ONNX Runtime, the accuracy gate,
the sidecar and its compatibility checks, and the bad-input errors."""

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX wheels not installed (the build extra)")
pytest.importorskip("modelopt", reason="nvidia-modelopt not installed (the build extra)")

from conftest import run_cli  # noqa: E402

from edge.backends.sidecar import check_sidecar, read_sidecar, sidecar_path  # noqa: E402
from edge.demo import MODEL  # noqa: E402
from edge.errors import InputError  # noqa: E402
from edge.gpu import GpuInfo  # noqa: E402
from edge.recipe import load_recipe  # noqa: E402
from edge.schema import to_dict  # noqa: E402


def build(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "build_engines.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(r):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    return [line for line in r.stderr.splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """Good images: crops of the scikit-image gravel photo the demo model was trained on."""
    import cv2

    from edge import demo
    folder = tmp_path_factory.mktemp("good")
    crops = demo.training_crops()
    for i in range(0, len(crops), 2):
        cv2.imwrite(str(folder / f"g{i:03d}.png"), crops[i])
    return folder


@pytest.fixture(scope="module")
def fp32_engine(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "demo.plan"
    r = build(MODEL, "-o", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_fp32_engine_and_sidecar(fp32_engine):
    import onnx
    out, r = fp32_engine
    s = read_sidecar(out)
    assert out.stat().st_size > 100_000 and s.engine.sha256 == sha(out)
    assert s.onnx.sha256 == sha(MODEL)
    assert s.tensorrt.flavour == "tensorrt-rtx" and s.tensorrt.version.startswith("1.")
    assert s.precision == "fp32" and s.gate is None
    assert to_dict(s.io.inputs) == [{"name": "image", "shape": [1, 1, 192, 192], "dtype": "float32"}]
    assert s.io.outputs[0].shape == [1, 1, 192, 192]
    meta = {p.key: p.value for p in onnx.load(str(MODEL)).metadata_props}
    assert s.recipe == load_recipe(meta, str(MODEL))  # edge-run reads the recipe from here
    assert "8.6" in s.target.compute_capabilities
    assert set(s.layers["convolution"]) == {"float32"}
    assert "wrote" in r.stderr and "precision  fp32" in r.stderr


def test_second_build_is_skipped_and_a_rebuild_gives_the_same_engine(fp32_engine):
    out, _ = fp32_engine
    before = sha(out)
    r = build(MODEL, "-o", out)
    assert r.returncode == 0 and "up to date" in r.stderr
    r = build(MODEL, "-o", out, "--rebuild")
    assert r.returncode == 0 and "wrote" in r.stderr
    assert sha(out) == before  # TensorRT-RTX builds are deterministic


def test_fp16_engine(tmp_path, good_dir):
    import onnx
    import onnxruntime as ort
    out, graph = tmp_path / "demo16.plan", tmp_path / "demo16.onnx"
    # one good crop (g094) of the 18 held out sits at the demo model's calibrated threshold, and
    # FP16 rounding flips it: 35/36 = 97.2 % agree, under the default 99 %
    r = build(MODEL, "-o", out, "--fp16", "--calib-dir", good_dir, "--save-onnx", graph, "--min-agreement", "0.97")
    assert r.returncode == 0, r.stderr
    s = read_sidecar(out)
    assert s.precision == "fp16" and s.gate["passed"] is True
    assert s.layers["convolution"] == {"float16": 19}
    assert s.io.inputs[0].dtype == "float32"  # I/O stays FP32: the station feeds float32
    m = onnx.load(str(graph))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    x = np.random.default_rng(0).random((1, 1, 192, 192), dtype=np.float32)
    a = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(a - b).mean() < 1e-3


def test_int8_qdq_engine_passes_the_gate(tmp_path, good_dir):
    out, graph = tmp_path / "demo8.plan", tmp_path / "demo8.onnx"
    r = build(MODEL, "-o", out, "--int8", "--calib-method", "max", "--calib-dir", good_dir, "--save-onnx", graph)
    assert r.returncode == 0, r.stderr
    s = read_sidecar(out)
    assert s.precision == "int8"
    assert s.layers["convolution"].get("int8", 0) >= 10  # the Q/DQ convolutions run in INT8
    assert s.layers["convolution"].get("float32", 0) >= 1  # the output head stays FP32
    g = s.gate
    assert g["passed"] and g["pixel_auroc_drop_points"] <= 0.5 and g["verdict_agreement"] >= 0.99
    assert g["pixel_auroc_candidate"] > 0.9  # the Q/DQ model, under ONNX Runtime, still finds the defects
    assert s.build["calibration"]["method"] == "max"


def damage(src, dst, factor=0.05):
    """A deliberately broken quantization: every activation scale shrunk, so activations clip."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(src))
    act_scales = {n.input[1] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    weights = {n.output[0] for n in m.graph.node if n.op_type == "Constant"}
    for init in m.graph.initializer:
        if init.name in act_scales and init.name not in weights:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(m, str(dst))


def test_gate_refuses_a_damaged_quantization(tmp_path, good_dir):
    good_q = tmp_path / "q.onnx"
    r = build(MODEL, "-o", tmp_path / "ok.plan", "--int8", "--calib-method", "max", "--calib-dir", good_dir,
              "--save-onnx", good_q)
    assert r.returncode == 0, r.stderr
    damage(good_q, tmp_path / "bad.onnx")
    out = tmp_path / "bad.plan"
    r = build(tmp_path / "bad.onnx", "-o", out, "--int8", "--reference", MODEL, "--calib-dir", good_dir)
    assert r.returncode == 3, r.stderr
    assert "result          FAIL" in r.stderr and "refused" in r.stderr
    assert not out.exists() and not sidecar_path(out).exists()
    r = build(tmp_path / "bad.onnx", "-o", out, "--int8", "--reference", MODEL, "--calib-dir", good_dir, "--force")
    assert r.returncode == 0, r.stderr
    assert read_sidecar(out).gate["passed"] is False  # the sidecar says it was forced through


def test_shape_override_runs_whole_frames(tmp_path):
    out = tmp_path / "big.plan"
    r = build(MODEL, "-o", out, "--shape", "384x384")
    assert r.returncode == 0, r.stderr
    assert read_sidecar(out).io.inputs[0].shape == [1, 1, 384, 384]


def test_bad_inputs_give_one_line_errors(tmp_path, good_dir):
    out = tmp_path / "x.plan"
    lines = one_line_error(build(tmp_path / "missing.onnx", "-o", out))
    assert "ONNX model not found" in lines[0]
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(MODEL.read_bytes()[:5000])
    lines = one_line_error(build(truncated, "-o", out))
    assert "truncated.onnx" in lines[0] and "not a valid ONNX model" in lines[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    lines = one_line_error(build(MODEL, "-o", out, "--int8", "--calib-dir", empty))
    assert "found none" in lines[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(6):
        (broken / f"b{i}.png").write_bytes(b"not an image")
    lines = one_line_error(build(MODEL, "-o", out, "--int8", "--calib-dir", broken))
    assert "unreadable image" in lines[0] and re.search(r"broken/b\d\.png", lines[0])
    lines = one_line_error(build(MODEL, "-o", out, "--int8"))
    assert "--calib-dir" in lines[0]
    lines = one_line_error(build(MODEL, "-o", out, "--dla-core", "0"))
    assert "DLA" in lines[0]
    lines = one_line_error(build(MODEL, "-o", out, "--shape", "12y"))
    assert "--shape" in lines[0] and "expected HxW" in lines[0]
    assert not out.exists()


# -- the sidecar's compatibility checks (no GPU needed: the GPU is described, never used) ----------

def test_sidecar_mismatches_name_the_cause_and_the_rebuild(fp32_engine, tmp_path):
    out, _ = fp32_engine
    s = read_sidecar(out)
    ampere = GpuInfo("NVIDIA RTX A4000", "8.6")
    check_sidecar(out, s, "tensorrt-rtx", s.tensorrt.version, ampere)  # fits: no error
    cases = [
        (("tensorrt", "10.3.0", ampere), "installed is tensorrt 10.3.0"),
        (("tensorrt-rtx", "1.0.0.21", ampere), "installed is 1.0.0.21"),
        ((None, None, ampere), "not installed here"),
        (("tensorrt-rtx", s.tensorrt.version, GpuInfo("NVIDIA H100", "9.0")), "this GPU (NVIDIA H100) is 9.0"),
        (("tensorrt-rtx", s.tensorrt.version, None), "needs an NVIDIA GPU"),
    ]
    for (name, version, gpu), expected in cases:
        with pytest.raises(InputError) as e:
            check_sidecar(out, s, name, version, gpu)
        assert expected in e.value.line()
        if gpu is not None:
            assert "build-engine" in e.value.line() and str(MODEL) in e.value.line()  # how to rebuild
            assert e.value.line().endswith("--rebuild"), e.value.line()  # else it is found up to date


def test_version_compatible_and_hardware_levels():
    from edge.backends.sidecar import Target, _runtime_ok, gpu_mismatch
    assert _runtime_ok("tensorrt", "10.3.0", "10.7.0", True) and not _runtime_ok("tensorrt", "10.3.0", "10.7.0", False)
    assert not _runtime_ok("tensorrt", "10.7.0", "10.3.0", True) and not _runtime_ok("tensorrt", "10.3.0", "11.0.0", True)
    assert not _runtime_ok("tensorrt-rtx", "1.7.1.116", "1.7.2.1", True)  # RTX: the building release only
    orin = GpuInfo("Orin", "8.7")
    assert gpu_mismatch(Target(hardware_compatibility="ampere+"), orin) is None
    assert gpu_mismatch(Target(hardware_compatibility="ampere+"), GpuInfo("T4", "7.5")) is not None
    assert gpu_mismatch(Target(compute_capability="8.7", gpu="Orin"), orin) is None
    assert "8.6" in gpu_mismatch(Target(compute_capability="8.6", gpu="A4000"), orin)


def test_engine_replaced_behind_its_sidecar(fp32_engine, tmp_path):
    out, _ = fp32_engine
    copy = tmp_path / "copy.plan"
    copy.write_bytes(out.read_bytes()[:-10] + b"0123456789")
    sidecar_path(copy).write_text(sidecar_path(out).read_text())
    with pytest.raises(InputError, match="does not match its sidecar"):
        check_sidecar(copy, read_sidecar(copy), "tensorrt-rtx", read_sidecar(copy).tensorrt.version,
                      GpuInfo("A4000", "8.6"))


def test_edge_run_refuses_an_engine_it_cannot_run_here(fp32_engine, tmp_path):
    from edge.gpu import probe_gpu
    if probe_gpu() is not None:
        pytest.skip("this machine has a GPU: the GPU tests cover running the engine")
    out, _ = fp32_engine
    r = run_cli(["--engine", str(out), "--frames", "1"])
    assert r.returncode == 2 and "needs an NVIDIA GPU" in r.stderr and "Traceback" not in r.stderr
    lone = tmp_path / "lone.plan"
    lone.write_bytes(out.read_bytes())
    r = run_cli(["--engine", str(lone), "--frames", "1"])
    assert r.returncode == 2 and "no sidecar lone.plan.json" in r.stderr


def test_tensorrt_rtx_refuses_to_build_for_a_gpu_it_does_not_target(tmp_path):
    """TensorRT-RTX's targets stop at SM75/80/86/89/120/121: an engine for a Hopper (9.0) or an
    Orin (8.7) station would be refused by edge-run there. The real TensorRT-RTX builder, asked
    for those targets: exit 2, one line naming the flavour to install; 8.6 builds."""
    for cc in ("9.0", "8.7"):
        r = build(MODEL, "-o", tmp_path / f"m{cc}.plan", "--target-cc", cc)
        lines = one_line_error(r)
        assert len(lines) == 1 and f"not {cc}" in lines[0] and "pypi.nvidia.com" in lines[0], r.stderr
        assert not (tmp_path / f"m{cc}.plan").exists()
    r = build(MODEL, "-o", tmp_path / "m86.plan", "--target-cc", "8.6")
    assert r.returncode == 0, r.stderr


def test_a_gpu_at_hand_that_tensorrt_rtx_does_not_target_is_refused():
    """The same check against the GPU this machine has (an H200 here is described, not present)."""
    import types

    from build_engines.builder import BuildOptions, _target
    from edge.backends.trt_flavours import load
    f = load("tensorrt-rtx")
    cfg = types.SimpleNamespace(set_compute_capability=lambda *a: None)
    with pytest.raises(InputError, match=r"--flavour: tensorrt-rtx .* not this machine's GPU \(NVIDIA H200, 9.0\)"):
        _target(f, cfg, BuildOptions(), GpuInfo("NVIDIA H200", "9.0"), "model.onnx")
    assert _target(f, cfg, BuildOptions(), GpuInfo("NVIDIA RTX 4000 Ada", "8.9"), "m")["compute_capabilities"]


def test_the_build_key_names_the_gpu_it_was_built_on():
    import argparse

    from build_engines.cli import _build_key
    from edge.backends.trt_flavours import load
    args, f = argparse.Namespace(reference=None, fp16=True), load("tensorrt-rtx")
    keys = {_build_key(b"m", args, f, [], gpu) for gpu in (None, GpuInfo("A4000", "8.6"), GpuInfo("L4", "8.9"))}
    assert len(keys) == 3


def test_a_dynamic_height_and_width_without_shape_is_refused(tmp_path):
    """Dynamic H/W taken as 1 built a 1x1 engine (and cut calibration images into 1x1 tiles). A
    whole-frame model (the demo U-Net made dynamic, input_multiple 16 in its recipe) is built
    for the station's frame size rounded up to the sides it takes: 200x200 -> 208x208."""
    import json

    import onnx

    from build_engines.graph import input_dims
    from edge.recipe import RECIPE_KEY
    m = onnx.load(str(MODEL))
    for prop in m.metadata_props:
        if prop.key == RECIPE_KEY:
            recipe = json.loads(prop.value)
            recipe["preprocess"]["input_multiple"] = 16
            prop.value = json.dumps(recipe)
    for i, name in ((2, "h"), (3, "w")):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_param = name
    m.graph.output[0].type.tensor_type.shape.dim[2].dim_param = "h"
    m.graph.output[0].type.tensor_type.shape.dim[3].dim_param = "w"
    path = tmp_path / "dyn.onnx"
    onnx.save(m, str(path))
    assert input_dims(m)[2:] == ["h", "w"]
    lines = one_line_error(build(path, "-o", tmp_path / "dyn.plan"))
    assert len(lines) == 1 and "dynamic" in lines[0] and "--shape HxW" in lines[0]
    r = build(path, "-o", tmp_path / "dyn.plan", "--shape", "200x200")
    assert r.returncode == 0, r.stderr
    assert "--shape 200x200 rounded up to 208x208" in r.stderr
    assert read_sidecar(tmp_path / "dyn.plan").io.inputs[0].shape == [1, 1, 208, 208]
    r = build(path, "-o", tmp_path / "frame.plan", "--frame", "200x200")  # the same, named as the frame size
    assert r.returncode == 0, r.stderr
    assert read_sidecar(tmp_path / "frame.plan").io.inputs[0].shape == [1, 1, 208, 208]


def test_frame_builds_one_call_per_frame_of_a_tiled_model(tmp_path):
    """--frame HxW: the demo network as a tiled model (native scale, 192-px tiles overlapping by
    32, a dynamic batch) gets the batch of a 400x400 frame's tiles: rows and columns at 0, 160 and
    208, 9 tiles, so the station runs each frame in one call. A model of fixed batch 1 is refused."""
    import json

    import onnx

    from edge.recipe import RECIPE_KEY
    m = onnx.load(str(MODEL))
    for prop in m.metadata_props:
        if prop.key == RECIPE_KEY:
            recipe = json.loads(prop.value)
            recipe["preprocess"].update(size=None, tile_overlap=32)
            prop.value = json.dumps(recipe)
    fixed = tmp_path / "fixed.onnx"
    onnx.save(m, str(fixed))
    lines = one_line_error(build(fixed, "-o", tmp_path / "f.plan", "--frame", "400x400"))
    assert len(lines) == 1 and "batch is fixed at 1" in lines[0] and "9 tiles" in lines[0]
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "tiles"
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "tiles"
    tiled = tmp_path / "tiled.onnx"
    onnx.save(m, str(tiled))
    r = build(tiled, "-o", tmp_path / "t.plan", "--frame", "400x400")
    assert r.returncode == 0, r.stderr
    assert "9 tile(s) of 192x192 per frame, built as --batch 9" in r.stderr
    assert read_sidecar(tmp_path / "t.plan").io.inputs[0].shape == [9, 1, 192, 192]
    for prop in m.metadata_props:  # two scales: the frame at half size adds its 2 x 2 tiles to the call
        if prop.key == RECIPE_KEY:
            prop.value = json.dumps({**recipe, "preprocess": {**recipe["preprocess"], "coarse_scale": 0.5},
                                     "detect": {"method": "probability"}})
    onnx.save(m, str(tiled))
    r = build(tiled, "-o", tmp_path / "two.plan", "--frame", "400x400")
    assert r.returncode == 0, r.stderr
    assert "13 tile(s) of 192x192 per frame, built as --batch 13" in r.stderr
    for prop in m.metadata_props:  # a working scale: the tiles of the frame resized (800x800 at 0.5: 3 x 3)
        if prop.key == RECIPE_KEY:
            prop.value = json.dumps({**recipe, "preprocess": {**recipe["preprocess"], "working_scale": 0.5}})
    onnx.save(m, str(tiled))
    r = build(tiled, "-o", tmp_path / "ws.plan", "--frame", "800x800")
    assert r.returncode == 0, r.stderr
    assert "9 tile(s) of 192x192 per frame, built as --batch 9" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["--fp16", "--int8"])
def test_a_fixed_batch_of_three_builds_in_both_precisions(tmp_path, good_dir, precision):
    """--batch 3: INT8 calibration fed one tile to a graph fixed at batch 3, and FP16 AutoCast
    failed for any batch that does not divide its 16 samples."""
    out = tmp_path / "b3.plan"
    r = build(MODEL, "-o", out, precision, "--batch", "3", "--calib-dir", good_dir, "--calib-method", "max",
              "--min-agreement", "0.9", "--force")
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_sidecar(out).io.inputs[0].shape[0] == 3


@pytest.mark.slow
def test_the_gpu_bench_builds_the_default_for_its_frame_without_a_gpu(tmp_path, monkeypatch):
    """bench_gpu --build-only: edge-train's default (two steps on synthetic textures) built by
    build-engine for a 512x512 frame as one call with all 9 of its tiles; the timing half needs a
    GPU (where none is, the bench says so and exits 2)."""
    import json

    import bench.common
    from bench import bench_gpu
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    monkeypatch.setattr("edge.gpu.probe_gpu", lambda: None)
    assert bench_gpu.main(["--models", "default", "--sizes", "512"]) == 2
    assert bench_gpu.main(["--build-only", "--models", "default", "--sizes", "512", "--precisions", "fp32"]) == 0
    case = json.loads((tmp_path / "gpu.json").read_text())["cases"]["default 512x512 fp32"]
    assert case.get("input") == [9, 1, 256, 256] and case["precision"] == "fp32", case  # from the engine's sidecar
