"""A model that outputs NaN or Inf never passes a part: NaN compares false with every threshold,
so unchecked it would be OK. The frame is DROPPED (reason non_finite) or, by the recipe's
`decision.non_finite: ng`, NG with a null score; the PLC gets a readable register; recipes and
configs refuse non-finite numbers."""

import json

import pytest
from conftest import make_station, run_cli
from test_outputs_network import _modbus_yaml, plc  # noqa: F401  (the PLC fixture)

from edge.errors import InputError
from edge.recipe import Recipe
from edge.schema import load
from testkit.lowpass_model import DEMO_RECIPE


def _nan_model(path, recipe=DEMO_RECIPE):
    """sqrt(image - 2): NaN at every pixel, the shape of the demo autoencoder."""
    import onnx
    from onnx import TensorProto, helper

    from edge.recipe import RECIPE_KEY, recipe_json
    graph = helper.make_graph(
        [helper.make_node("Sub", ["image", "two"], ["shifted"]), helper.make_node("Sqrt", ["shifted"], ["reconstruction"])],
        "nan_model", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 128, 128])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["batch", 1, 128, 128])],
        initializer=[helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {RECIPE_KEY: recipe_json(load(Recipe, recipe, "test"))})
    onnx.save(model, path)


def _records(res):
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_nan_output_is_dropped_with_its_reason_never_ok(tmp_path):
    cfg = make_station(tmp_path, count=4)
    _nan_model(tmp_path / "ae.onnx")
    res = run_cli(["--config", str(cfg)])
    records = _records(res)
    assert len(records) == 4 and {r["verdict"] for r in records} == {"DROPPED"}
    assert {r["reason"] for r in records} == {"non_finite"}
    assert res.returncode == 1, "a run that inspected nothing is no success"


@pytest.mark.parametrize("rule", ["score", "regions"])
def test_nan_output_is_ng_by_the_recipe_policy(tmp_path, rule):
    cfg = make_station(tmp_path, count=3)
    _nan_model(tmp_path / "ae.onnx", {**DEMO_RECIPE, "decision": {"rule": rule, "score_threshold": 0.5,
                                                                   "non_finite": "ng"}})
    res = run_cli(["--config", str(cfg)])
    records = _records(res)
    assert res.returncode == 0, res.stderr
    assert [r["verdict"] for r in records] == ["NG"] * 3
    assert all(r["score"] is None and r["reason"] == "non_finite" for r in records)
    assert "NaN" not in res.stdout and "Infinity" not in res.stdout  # valid JSON for every consumer


def test_modbus_gets_a_saturated_score_for_a_non_finite_ng(tmp_path, plc):  # noqa: F811  (the fixture)
    plc.start()
    cfg = make_station(tmp_path, count=2, extra_yaml=_modbus_yaml(plc.port, tmp_path / "spool"))
    _nan_model(tmp_path / "ae.onnx", {**DEMO_RECIPE, "decision": {"non_finite": "ng"}})
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    regs = plc.read()
    assert (regs["ng"], regs["ok"], regs["score"], regs["coil"]) == (2, 0, 65535, True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_recipes_and_configs_refuse_non_finite_numbers(tmp_path, value):
    with pytest.raises(InputError, match="decision.score_threshold: expected a finite number"):
        load(Recipe, {**DEMO_RECIPE, "decision": {"rule": "score", "score_threshold": value}}, "model.onnx")
    with pytest.raises(InputError, match="expected a finite number"):
        load(Recipe, {**DEMO_RECIPE, "detect": {"method": "dct_fusion", "dct_fusion": {"gamma": value}}}, "m")
    cfg = make_station(tmp_path, count=1, extra_yaml="detect:\n  dct_fusion:\n    epsilon: .nan\n")
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "expected a finite number" in res.stderr, res.stderr
