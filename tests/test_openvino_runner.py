"""OpenVINO on the CPU, real (the openvino extra): the same ONNX model as ONNX Runtime with the same
maps in fp32, the default network's all-tiles batch in one call, bf16 where the CPU computes it
(the maps within a few hundredths), the station and edge-eval choosing it by name, and one-line
errors for the combinations that cannot run."""

import json

import numpy as np
import pytest
from conftest import make_station, run_cli, textured, train_briefly

ov = pytest.importorskip("openvino")

from edge.backends import open_runner  # noqa: E402
from edge.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from edge.backends.openvino import OpenVinoRunner, cpu_has_bf16  # noqa: E402
from edge.errors import InputError  # noqa: E402

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(ov.Core()), reason="this CPU has neither AMX nor AVX-512 BF16")


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    """The default method's network (perlin_seg: stride-2 stem, U-Net, 256-px tiles in a dynamic
    batch), trained for a few steps and exported as edge-train exports it."""
    pytest.importorskip("torch")
    return train_briefly(tmp_path_factory.mktemp("ov"), [(300, 280)] * 8)[0]


def _tiles(n, seed=0):
    return np.stack([textured(seed + i, 256, 256)[None] for i in range(n)]).astype(np.float32)


def test_fp32_maps_equal_onnx_runtimes_for_any_number_of_tiles_in_one_call(default_model):
    with OnnxRuntimeRunner(default_model) as ref, OpenVinoRunner(default_model, precision="fp32") as run:
        assert run.input_shape == ref.input_shape == (0, 1, 256, 256)
        assert run.metadata == ref.metadata and "edge_recipe" in run.metadata  # the recipe travels in the file
        for n in (1, 9, 4):  # the batch changes between calls, as frames of other sizes do
            x = _tiles(n, n)
            out = run.infer(x)
            assert out.shape == (n, 1, 256, 256) and out.dtype == np.float32
            assert np.abs(out - ref.infer(x)).max() < 1e-4


@needs_bf16
def test_bf16_is_what_auto_takes_on_this_cpu_and_moves_the_maps_by_hundredths_only(default_model):
    x = _tiles(9, 3)
    with OnnxRuntimeRunner(default_model) as ref, OpenVinoRunner(default_model) as run:
        assert run.precision == "bf16"
        diff = np.abs(run.infer(x) - ref.infer(x))
    assert 0 < diff.max() < 0.05  # not fp32 (bf16 really ran), and close to it
    assert diff.mean() < 0.005


def test_the_output_belongs_to_the_runner_until_its_next_infer(default_model):
    """base.py's ownership rule, which the station relies on (it copies the output at once)."""
    with OpenVinoRunner(default_model, precision="fp32") as run:
        a = run.infer(_tiles(2, 0))
        kept = a.copy()
        run.infer(_tiles(2, 5))
        assert not np.array_equal(a, kept)  # the same buffer, overwritten: a caller must copy


def test_edge_run_with_backend_openvino_gives_onnx_runtimes_verdicts(tmp_path):
    cfg = make_station(tmp_path, count=6, defects=(1, 4))
    cfg.write_text(cfg.read_text().replace("  path: ae.onnx\n", "  path: ae.onnx\n  backend: onnxruntime\n"))
    ref = [json.loads(x) for x in run_cli(["--config", str(cfg)]).stdout.splitlines()]
    for precision in ("fp32", "auto"):
        cfg.write_text(cfg.read_text().split("model:")[0]
                       + f"model:\n  path: ae.onnx\n  backend: openvino\n  precision: {precision}\n")
        res = run_cli(["--config", str(cfg)])
        assert res.returncode == 0, res.stderr
        got = [json.loads(x) for x in res.stdout.splitlines()]
        assert [g["verdict"] for g in got] == [r["verdict"] for r in ref] == ["OK", "NG", "OK", "OK", "NG", "OK"]
        tol = 1e-4 if precision == "fp32" else 0.05
        assert all(abs(g["score"] - r["score"]) <= tol * max(1.0, abs(r["score"])) for g, r in zip(got, ref))


@pytest.mark.parametrize("yaml_model,expected", [
    ("  path: ae.onnx\n  backend: onnxruntime\n  precision: bf16\n",
     "model.precision: onnxruntime takes the precision the model or engine was built in; bf16 is for backend: openvino"),
    ("  path: ae.plan\n  backend: openvino\n", "model.backend: openvino runs ONNX models, and ae.plan is not one"),
    ("  path: ae.onnx\n  backend: openvino\n  precision: fp16\n", "model.precision: expected one of"),
])
def test_combinations_that_cannot_run_are_refused_in_one_line(tmp_path, yaml_model, expected):
    cfg = make_station(tmp_path, count=1, defects=())
    (tmp_path / "ae.plan").write_bytes(b"not an engine")
    cfg.write_text(cfg.read_text().split("model:")[0] + "model:\n" + yaml_model)
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert expected in res.stderr and res.stdout == ""


def test_bf16_on_a_cpu_without_it_is_refused_and_auto_falls_back_to_fp32(tmp_path, monkeypatch):
    """The CPU's answer is the one thing doubled here: OpenVINO's capability list says no BF16."""
    import edge.backends.openvino as mod
    cfg = make_station(tmp_path, count=1, defects=())
    monkeypatch.setattr(mod, "cpu_has_bf16", lambda core: False)
    with pytest.raises(InputError, match="model.precision: bf16 needs a CPU that computes it"):
        open_runner(tmp_path / "ae.onnx", "openvino", precision="bf16", where=str(cfg))
    assert open_runner(tmp_path / "ae.onnx", "openvino").precision == "fp32"


def test_edge_eval_runs_openvino_and_says_so_in_its_metrics(tmp_path, default_model):
    import cv2

    from edge.demo import paint_defect, texture
    from train.cli import edge_eval_main
    root = tmp_path / "tree"
    for kind in ("good", "pit"):
        (root / "test" / kind).mkdir(parents=True)
        for i in range(2):
            img = texture(70 + i, 256)
            if kind == "pit":
                paint_defect(img, 0, 70 + i)
            cv2.imwrite(str(root / "test" / kind / f"{i}.png"), (img * 255).astype(np.uint8))
    assert edge_eval_main(["--model", str(default_model), "--data", str(root), "--out", str(tmp_path / "e"),
                           "--backend", "openvino", "--precision", "fp32"]) == 0
    assert json.loads((tmp_path / "e/metrics.json").read_text())["overall"]["runner"].startswith("openvino 20")
    assert json.loads((tmp_path / "e/metrics.json").read_text())["overall"]["runner"].endswith(" (fp32)")


def test_auto_runs_onnx_models_with_openvino_where_installed_else_onnx_runtime(tmp_path, monkeypatch):
    """Whether the extra is installed is the one thing doubled here (it is, in the dev install)."""
    import edge.backends as backends
    make_station(tmp_path, count=1, defects=())
    with open_runner(tmp_path / "ae.onnx") as r:
        assert isinstance(r, OpenVinoRunner)
    monkeypatch.setattr(backends, "openvino_installed", lambda: False)
    with open_runner(tmp_path / "ae.onnx") as r:
        assert isinstance(r, OnnxRuntimeRunner)
    with pytest.raises(InputError, match="bf16 is for backend: openvino"):
        open_runner(tmp_path / "ae.onnx", precision="bf16")
