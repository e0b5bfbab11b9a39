"""Config validation: every bad input is one line naming file, key path and what was expected; exit code 2."""

import textwrap

import pytest
from conftest import run_cli

from edge import config
from edge.demo import MODEL
from edge.errors import InputError


def _write(tmp_path, text):
    p = tmp_path / "station.yaml"
    p.write_text(textwrap.dedent(text))
    return p


GOOD = f"""
station: s1
cameras:
  cam0:
    source: file://frames
model:
  path: {MODEL}
detect:
  dct_fusion:
    epsilon: 0.04
"""


def test_good_config_loads(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.png").write_bytes(b"x")
    cfg = config.load_file(_write(tmp_path, GOOD))
    assert cfg.file.station == "s1"
    assert cfg.camera("cam0").queue == 4
    assert cfg.overrides == {"detect": {"dct_fusion": {"epsilon": 0.04}}}


@pytest.mark.parametrize("text,key,expected", [
    ("cameras: {cam0: {source: 'file://frames', qeue: 3}}", "cameras.cam0.qeue", "unknown key"),
    ("cameras: {cam0: {source: 'file://frames', queue: many}}", "cameras.cam0.queue", "expected an integer, got 'many'"),
    ("cameras: {cam0: {source: 'file://frames', queue: 0}}", "cameras.cam0.queue", "expected a number >= 1"),
    ("cameras: {cam0: {source: 'rtsp://x'}}", "cameras.cam0.source", "expected a URI starting with file:// or genicam://"),
    ("cameras: {cam0: {source: 'file://nowhere'}}", "cameras.cam0.source", "no such file or folder"),
    ("cameras: {cam0: {source: 'file://frames?fps=fast'}}", "cameras.cam0.source", "URI option 'fps' expected float"),
    ("cameras: {cam0: {source: 'file://frames?speed=2'}}", "cameras.cam0.source", "unknown URI option 'speed'"),
    ("cameras: {cam0: {}}", "cameras.cam0.source", "missing"),
    ("model: {path: missing.onnx}", "model.path", "model file not found"),
    ("model: {backend: tensorflow}", "model.backend", "expected one of 'auto', 'onnxruntime'"),
    ("detect: {method: magic}", "detect.method", "expected one of 'dct_fusion'"),
    ("detect: {dct_fusion: {gamma: -1}}", "detect.dct_fusion.gamma", "expected a number >= 0"),
    ("detect: {dct_fusion: {patch: 16, block: 32}}", "detect.dct_fusion.block", "expected at most patch (16)"),
    ("detect: {squared_residual: {kernel: 4}}", "detect.squared_residual.kernel", "expected an odd integer"),
    ("preprocess: {size: [10]}", "preprocess.size", "expected a list of 2 integers or null"),
    ("decision: {min_area: 0}", "decision.min_area", "expected a number >= 1"),
    ("telemetry: {prometheus: {port: 70000}}", "telemetry.prometheus.port", "expected a TCP port"),
    ("outputs: {jsonl: {stdout: yes please}}", "outputs.jsonl.stdout", "expected true or false"),
    ("outputs: {jsonl: {path: /no/such/dir/v.jsonl}}", "outputs.jsonl.path", "folder does not exist"),
    ("cameras: [cam0]", "cameras", "expected a mapping"),
])
def test_bad_config_names_file_key_and_expectation(tmp_path, text, key, expected):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.png").write_bytes(b"x")
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        config.load_file(path)
    line = err.value.line()
    assert line.startswith(f"{path}: {key}:"), line
    assert expected in line, line
    assert "\n" not in line


@pytest.mark.parametrize("content,expected", [
    ("cameras: {cam0: {source: [unclosed", "not valid YAML (line 1"),
    ("- just\n- a list\n", "expected a mapping of sections at the top level"),
])
def test_unreadable_config(tmp_path, content, expected):
    path = tmp_path / "s.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=expected.replace("(", r"\(")):
        config.load_file(path)


def test_cli_bad_config_exit_2_one_line_no_traceback(tmp_path):
    path = _write(tmp_path, "cameras: {cam0: {source: 'file://frames', queue: -3}}")
    res = run_cli(["--config", str(path), "--frames", "1"])
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines == [f"edge-run: error: {path}: cameras.cam0.queue: expected a number >= 1 and <= 1024, got -3"]


@pytest.mark.parametrize("args,expected", [
    (["--config", "/no/such.yaml"], "/no/such.yaml: config file not found"),
    (["--camera", "cam9"], "<embedded default>: cameras.cam9: no such camera (configured: cam0)"),
    (["--engine", "/no/model.onnx"], "<command line>: --engine: model file not found"),
    (["--frames", "-1"], "<command line>: --frames: expected a number >= 0"),
])
def test_cli_bad_arguments(args, expected):
    res = run_cli(args)
    assert res.returncode == 2, res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr


def test_truncated_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(MODEL.read_bytes()[:300])
    res = run_cli(["--engine", str(bad), "--frames", "1"])
    assert res.returncode == 2
    assert f"{bad}: not a usable ONNX model" in res.stderr and "Traceback" not in res.stderr


def test_recipe_in_model_metadata_is_validated(tmp_path):
    import onnx
    from onnx import helper
    m = onnx.load(str(MODEL))
    del m.metadata_props[:]
    helper.set_model_props(m, {"edge_recipe": '{"detect": {"method": "dct_fusion", "dct_fusion": {"epsilon": "high"}}}'})
    bad = tmp_path / "m.onnx"
    onnx.save(m, bad)
    res = run_cli(["--engine", str(bad), "--frames", "1"])
    assert res.returncode == 2
    assert f"{bad}: edge_recipe.detect.dct_fusion.epsilon: expected a number, got 'high'" in res.stderr


def test_config_reference_is_current():
    from conftest import ROOT

    from edge.configdoc import render
    assert (ROOT / "docs" / "CONFIG.md").read_text() == render(), "run: python -m edge.configdoc > docs/CONFIG.md"


@pytest.mark.parametrize("patch", [31, 30])
def test_patch_not_a_multiple_of_4_is_refused(tmp_path, patch):
    path = _write(tmp_path, f"detect: {{dct_fusion: {{patch: {patch}}}}}")
    with pytest.raises(InputError, match=f"detect.dct_fusion.patch: expected a multiple of 4 in 8..256, got {patch}"):
        config.load_file(path)


def test_recipes_of_earlier_schemas_migrate_and_a_newer_one_is_named(monkeypatch):
    """Every deployed model carries a recipe: renaming a key must not make them exit 2."""
    import json as _json

    import edge.recipe as R
    from testkit.lowpass_model import DEMO_RECIPE
    todays = {R.RECIPE_KEY: _json.dumps(DEMO_RECIPE)}  # the shape every model shipped so far carries (no schema)
    assert R.load_recipe(todays, "old.onnx").schema == R.SCHEMA
    with pytest.raises(InputError, match=r"old.onnx: edge_recipe.schema: expected a recipe of schema \d+ or older, "
                                         "got 99: the model was made by a newer edge-inspect"):
        R.load_recipe({R.RECIPE_KEY: _json.dumps({**DEMO_RECIPE, "schema": 99})}, "old.onnx")

    def rename(raw):  # a future shape: decision.min_area was called decision.smallest
        d = dict(raw["decision"])
        d["min_area"] = d.pop("smallest")
        return {**raw, "decision": d}
    monkeypatch.setattr(R, "SCHEMA", R.SCHEMA + 1)
    monkeypatch.setitem(R.MIGRATIONS, R.SCHEMA - 1, rename)
    older = {**DEMO_RECIPE, "schema": R.SCHEMA - 1, "decision": {"smallest": 40}}
    recipe = R.load_recipe({R.RECIPE_KEY: _json.dumps(older)}, "older.onnx")
    assert recipe.decision.min_area == 40 and recipe.schema == R.SCHEMA


def test_tiled_models_of_schema_3_keep_the_averaged_tiles_they_were_calibrated_on():
    """tile_blend came with schema 4 and defaults to ramp; a model exported before it had its
    thresholds set on averaged tiles, so its recipe must load as mean, and a newer one as written."""
    import json as _json

    import edge.recipe as R
    old = {"schema": 3, "model_family": "perlin_seg", "preprocess": {"size": None, "tile_overlap": 64}}
    assert R.load_recipe({R.RECIPE_KEY: _json.dumps(old)}, "old.onnx").preprocess.tile_blend == "mean"
    assert R.load_recipe({R.RECIPE_KEY: _json.dumps({**old, "schema": 1})}, "old.onnx").preprocess.tile_blend == "mean"
    new = {**old, "schema": 4}
    assert R.load_recipe({R.RECIPE_KEY: _json.dumps(new)}, "new.onnx").preprocess.tile_blend == "ramp"
    new["preprocess"] = {**old["preprocess"], "tile_blend": "mean"}
    assert R.load_recipe({R.RECIPE_KEY: _json.dumps(new)}, "new.onnx").preprocess.tile_blend == "mean"
