"""edge-train / edge-eval on small generated data: loss goes down, resume, export parity, the
station runs the exported model, evaluation metrics on constructed cases, calibration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import SHARED_DATA, textured  # noqa: E402

from edge.errors import InputError  # noqa: E402
from train.cli import edge_eval_main, edge_train_main  # noqa: E402
from train.config import load_config  # noqa: E402
from train.evaluate import Result, auroc, metrics  # noqa: E402


def _mvtec(root: Path, n_train=24, size=160):
    """A tiny MVTec-style tree of generated textures, with painted defects and their masks."""
    from edge.demo import paint_defect
    for d in ("train/good", "test/good", "test/pit", "ground_truth/pit"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), (textured(100 + i, size, size) * 255).astype(np.uint8))
    for i in range(6):
        cv2.imwrite(str(root / "test/good" / f"g{i}.png"), (textured(300 + i, size, size) * 255).astype(np.uint8))
        img = textured(400 + i, size, size).copy()
        before = img.copy()
        paint_defect(img, 0, 400 + i)  # kind 0: a dark pit
        cv2.imwrite(str(root / "test/pit" / f"d{i}.png"), (img * 255).astype(np.uint8))
        cv2.imwrite(str(root / "ground_truth/pit" / f"d{i}_mask.png"), ((np.abs(img - before) > 0) * 255).astype(np.uint8))
    return root


def _config(tmp_path, **extra):
    data = _mvtec(tmp_path / "data")
    cfg = {"method": "renet_d", "data": str(data), "out": str(tmp_path / "run"), "size": 160, "patch": 32,
           "batch": 16, "width": 6, "epochs": 6, "steps_per_epoch": 8, "time_budget_min": 5, "seed": 1,
           "holdout": 0.2, **extra}
    path = tmp_path / "train.yaml"
    import yaml
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_training_reduces_the_loss_then_exports_calibrates_and_resumes(tmp_path, capsys):
    path = _config(tmp_path)
    assert edge_train_main(["--config", str(path)]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "train.json").read_text())
    losses = [h["loss"] for h in summary["history"]]
    assert len(losses) == 6 and losses[-1] < losses[0] * 0.8, losses
    s = summary["summary"]
    assert s["onnx_parity_max_abs"] < 1e-4
    assert s["train_images"] == 20 and s["holdout_images"] == 4  # every 5th file held out
    for name in ("model.onnx", "checkpoint.pt", "loss.png"):
        assert (run / name).is_file()
    from edge.recipe import read_recipe
    recipe = read_recipe(run / "model.onnx")
    assert recipe.model_family == "renet_d" and recipe.preprocess.size == (160, 160)
    assert recipe.decision.rule == "score" and recipe.decision.score_threshold > 0
    assert recipe.detect.squared_residual.floor == recipe.decision.score_threshold
    # resume: more epochs continue from the checkpoint instead of starting over
    import yaml
    cfg = yaml.safe_load(path.read_text())
    cfg["epochs"] = 8
    path.write_text(yaml.safe_dump(cfg))
    assert edge_train_main(["--config", str(path)]) == 0
    history = json.loads((run / "train.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert "resumed from" in capsys.readouterr().err


def test_the_station_runs_the_exported_model_as_edge_eval_measured_it(tmp_path):
    """edge-run on the test images gives, frame by frame, the score and verdict edge-eval's
    Inspector gives the same files: the station's preprocessing, model and detection are the
    ones the accuracy figures were measured with."""
    from train.evaluate import inspect_file, open_inspector
    path = _config(tmp_path, epochs=2)
    assert edge_train_main(["--config", str(path)]) == 0
    model = tmp_path / "run/model.onnx"
    files = sorted((tmp_path / "data/test/pit").glob("*.png"))
    station = tmp_path / "station.yaml"
    station.write_text(f"cameras:\n  cam0:\n    source: file://{tmp_path / 'data/test/pit'}\n")
    res = subprocess.run([sys.executable, "-m", "edge.cli", "--config", str(station), "--engine", str(model)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert "renet_d" in res.stderr and [l["source"] for l in lines] == [f.name for f in files]
    ins, runner = open_inspector(model)
    try:
        expected = [inspect_file(ins, f) for f in files]
    finally:
        runner.close()
    assert [l["verdict"] for l in lines] == [e[2] for e in expected]
    assert [l["score"] for l in lines] == pytest.approx([e[3] for e in expected], abs=1e-5)


def test_edge_eval_writes_metrics_and_pictures(tmp_path):
    path = _config(tmp_path)
    assert edge_train_main(["--config", str(path)]) == 0
    out = tmp_path / "eval"
    assert edge_eval_main(["--model", str(tmp_path / "run/model.onnx"), "--data", str(tmp_path / "data"),
                           "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"overall", "pit"} and m["overall"]["images"] == 12 and m["overall"]["defective"] == 6
    for key in ("image_auroc", "pixel_auroc", "pixel_precision", "pixel_recall", "pixel_f1", "dr", "far", "miou"):
        assert 0.0 <= m["overall"][key] <= 1.0
    assert m["overall"]["pixel_auroc"] > 0.6  # dark pits on a smooth texture are found even after a short run
    assert (out / "roc.png").stat().st_size > 1000 and (out / "overlays.png").stat().st_size > 1000
    # the HTML report stands alone: no external fetches, its numbers are metrics.json's, its pictures inline
    report = (out / "report.html").read_text()
    assert "http://" not in report and "https://" not in report and 'src="data:image/png;base64,' in report
    assert f"<td>{m['overall']['image_auroc']:.4f}</td>" in report and f"AUROC {m['overall']['image_auroc']:.4f}" in report
    assert report.count("<figure>") == 12  # 6 good (all of them) + 6 defective: fewer than 8 of each
    assert "Missed defects" in report and "Worst false alarms" in report


def test_auroc_on_known_cases():
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75  # sklearn's documented example


def test_detection_rate_at_a_false_alarm_rate():
    from train.evaluate import detection_at_far
    good = np.arange(20) / 100.0  # 0.00 .. 0.19: 5 % of 20 good parts is 1, so the threshold is 0.18
    labels = np.r_[np.zeros(20), np.ones(4)].astype(bool)
    scores = np.r_[good, [0.185, 0.18, 0.5, 0.1]]
    assert detection_at_far(scores, labels, 0.05) == 0.5  # 0.185 and 0.5 above 0.18; a tie is not
    assert detection_at_far(scores, labels, 0.0) == 0.25  # above the highest good score (0.19)
    assert np.isnan(detection_at_far(scores[20:], labels[20:]))  # no good parts: undefined
    assert np.isnan(detection_at_far(scores[:20], labels[:20]))  # no defective parts: undefined


def test_metrics_on_a_constructed_case():
    z = np.zeros((4, 4), np.uint8)
    truth = z.copy()
    truth[0, :2] = 1
    pred = z.copy()
    pred[0, 1:3] = 1  # 1 true positive, 1 false positive, 1 false negative
    sm = truth.astype(np.float32)
    results = [Result("good", 0.1, "OK", z, np.zeros((4, 4), np.float32), z, z, z),
               Result("good", 0.7, "NG", z, np.zeros((4, 4), np.float32), z, z, z),
               Result("scratch", 0.9, "NG", pred, sm, truth, z, z),
               Result("scratch", 0.3, "OK", z, np.zeros((4, 4), np.float32), truth, z, z)]
    m = metrics(results)["overall"]
    assert m["image_auroc"] == 0.75 and m["dr"] == 0.5 and m["far"] == 0.5
    assert m["pixel_precision"] == 0.5 and m["pixel_recall"] == 0.25 and m["pixel_f1"] == pytest.approx(1 / 3)
    assert m["miou"] == pytest.approx((1 / 3 + 0) / 2)


@pytest.mark.parametrize("extra,key,expected", [
    ({"method": "cae001", "size": 256}, "size", "expected 512"),
    ({"method": "skip_ae", "options": {"stage2": {"epochs": 3}}}, "options.stage2.lpips_weights", "cannot be downloaded here"),
    ({"method": "skip_ae", "options": {"stage2": {"epochs": 3, "lpips_weights": "none.pt"}}},
     "options.stage2.lpips_weights", "file not found"),
    ({"method": "renet_d", "patch": 512, "size": 256}, "patch", "expected at most size (256)"),
    ({"method": "gan"}, "method", "'cae001'"),
    ({"method": "perlin_seg", "options": {"share": 2}}, "options.share", "expected a number <= 1"),
    ({"method": "perlin_seg", "options": {"sharez": 0.5}}, "options.sharez", "unknown"),
    ({"method": "perlin_seg", "options": {"smooth": 4}}, "options.smooth", "odd"),
    ({"method": "perlin_seg", "options": {"band_cover": [0.5, 0.2]}}, "options.band_cover",
     "expected 0 < low <= high < 1"),
    ({"method": "perlin_seg", "patch": 100, "size": None, "options": {"stem": 1}}, "patch", "expected a multiple of 16"),
    ({"method": "perlin_seg", "patch": 80, "size": None, "options": {"stem": 2}}, "patch", "a multiple of 32"),
    ({"method": "perlin_seg", "size": None, "patch": None, "tile_overlap": 256}, "tile_overlap",
     "expected less than the tile (256)"),
    ({"method": "perlin_seg", "size": None, "patch": 128, "tile_overlap": 128}, "tile_overlap", "(128), got 128"),
    ({"method": "unet", "tile_overlap": 0}, "tile_overlap", "expected null: unet resizes frames"),
    ({"method": "unet", "tile_blend": "mean"}, "tile_blend", "expected null: unet resizes frames"),
    ({"method": "perlin_seg", "tile_blend": "max"}, "tile_blend", "expected one of"),
    ({"method": "unet", "coarse_scale": 0.5}, "coarse_scale", "expected auto or null: unet"),
    ({"method": "perlin_seg", "options": {"whole_frame": True}, "coarse_scale": 0.5}, "coarse_scale",
     "with fixed tiles"),
    ({"method": "perlin_seg", "coarse_scale": 1.5}, "coarse_scale", "a factor > 0 and < 1"),
    ({"method": "unet", "working_scale": 0.5}, "working_scale", "expected auto or 1: unet resizes its frames"),
    ({"method": "perlin_seg", "size": None, "working_scale": 0.5, "coarse_scale": "auto"}, "working_scale",
     "with a coarse_scale"),
    ({"method": "perlin_seg", "working_scale": 1.5}, "working_scale", "a factor > 0 and <= 1"),
    ({"method": "renet_d", "options": {"share": 0.5}}, "options.share", "unknown"),
    ({"method": "renet_d", "input_norm": True}, "input_norm", "reconstructs"),
    ({"method": "renet_d", "input_norm": False, "options": {"alpha": 2}}, "options.alpha", "expected a number <= 1"),
    ({"method": "unet", "options": {"pseudo": {"strength": [0.9, 0.2]}}}, "options.pseudo.strength",
     "expected 0 < low <= high <= 1"),
    ({"method": "unet", "options": {"pseudo": {"colours": [0, 0, 0]}}}, "options.pseudo.colours", "not all 0"),
    ({"method": "unet", "pseudo": {"margin": 0.7}}, "options.pseudo.margin", "expected"),  # the older form
    ({"method": "unet", "options": {"pseudo": {"shapes": [1, 1, 1]}}}, "options.pseudo.shapes", "expected a list of 6"),
    ({"method": "unet", "input_norm": True, "options": {"input_norm": False}}, "options.input_norm", "expected once"),
])
def test_bad_training_configs(tmp_path, extra, key, expected):
    path = _config(tmp_path, **extra)
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.key == key and expected in err.value.line()


def test_cosine_schedule_decays_the_learning_rate_over_the_budget(tmp_path):
    from train.trainer import Trainer
    cfg, base = load_config(_config(tmp_path, lr=0.01, lr_schedule="cosine", lr_floor=0.1, time_budget_min=2, epochs=10))
    t = Trainer(cfg, base)
    lr = lambda: t.opt.param_groups[0]["lr"]  # noqa: E731
    t._set_lr(0.0, 0.0)
    assert lr() == pytest.approx(0.01)
    t._set_lr(60.0, 0.0)  # half the time budget
    assert lr() == pytest.approx(0.01 * (0.1 + 0.9 * 0.5))
    t._set_lr(0.0, 1.0)  # the epochs ran out first
    assert lr() == pytest.approx(0.001)
    flat, _ = load_config(_config(tmp_path / "c", lr=0.01))
    t = Trainer(flat, base)
    t._set_lr(60.0, 0.5)
    assert lr() == pytest.approx(0.01)


def test_auto_memory_layout_is_the_faster_one_timed_on_the_network(monkeypatch):
    """channels_last: auto times a batch's forward and backward passes in both layouts on a CPU
    and trains in the faster (NHWC won on an AMD EPYC, NCHW on an Intel Xeon with AMX); true and
    false are obeyed untimed; on a GPU and under DDP (every rank must agree) NHWC, untimed."""
    import io

    import train.trainer as tr
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cpu, log = torch.device("cpu"), io.StringIO()
    real = tr.choose_layout("auto", net, (2, 1, 32, 32), cpu, False, False, log)  # really timed
    assert real in (torch.channels_last, torch.contiguous_format)
    assert "NHWC" in log.getvalue() and " ms" in log.getvalue()
    for k, v in net.state_dict().items():  # timed on copies: the network's statistics untouched
        assert torch.equal(v, before[k]), k

    timed = []

    def fake_timer(costs, busy=()):
        """Passes that cost `costs[layout]`, one second more for the passes numbered in `busy`
        (the machine busy with other work for a while)."""
        def timer(m, layout, x, bf16):
            def once():
                timed.append(layout)
                return costs[layout] + (1.0 if len(timed) - 1 in busy else 0.0)
            return once
        return timer

    for nhwc, nchw, expected in ((0.2, 0.1, torch.contiguous_format), (0.1, 0.2, torch.channels_last)):
        monkeypatch.setattr(tr, "_timer", fake_timer({torch.channels_last: nhwc, torch.contiguous_format: nchw}))
        assert tr.choose_layout("auto", net, (2, 1, 32, 32), cpu, False, False, io.StringIO()) == expected
    assert len(timed) == 4 * tr.LAYOUT_ROUNDS
    assert timed[:4] == [torch.channels_last, torch.contiguous_format] * 2  # taking turns
    timed.clear()
    # busy for three passes in a row (all of NCHW's, were they timed one layout after the other):
    # taking turns, each layout has passes outside it
    costs = {torch.channels_last: 0.25, torch.contiguous_format: 0.2}
    monkeypatch.setattr(tr, "_timer", fake_timer(costs, busy=(3, 4, 5)))
    assert tr.choose_layout("auto", net, (2, 1, 32, 32), cpu, False, False, io.StringIO()) == torch.contiguous_format
    timed.clear()
    assert tr.choose_layout(True, net, (2, 1, 32, 32), cpu, False, False, log) == torch.channels_last
    assert tr.choose_layout(False, net, (2, 1, 32, 32), cpu, False, False, log) == torch.contiguous_format
    assert tr.choose_layout("auto", net, (2, 1, 32, 32), torch.device("cuda"), False, False, log) == torch.channels_last
    assert tr.choose_layout("auto", net, (2, 1, 32, 32), cpu, False, True, log) == torch.channels_last
    assert not timed


def test_the_summary_reports_the_layout_trained_in(tmp_path, monkeypatch):
    import train.trainer as tr
    monkeypatch.setattr(tr, "_timer", lambda m, layout, x, bf16: lambda: 0.1 if layout == torch.channels_last else 0.2)
    cfg, base = load_config(_config(tmp_path, epochs=1, steps_per_epoch=2))
    t = tr.Trainer(cfg, base)
    assert t.layout == torch.channels_last and t.fit()["channels_last"] is True
    cfg, base = load_config(_config(tmp_path / "b", epochs=1, steps_per_epoch=2, channels_last=False))
    assert tr.Trainer(cfg, base).fit()["channels_last"] is False


def test_ema_exports_the_moving_average_of_the_weights_and_resumes_it(tmp_path):
    """ema: d keeps avg <- d * avg + (1 - d) * w after every step; the trained model handed to
    export is that average, not the last step's weights (its BatchNorm statistics: next test)."""
    from train.trainer import Trainer
    cfg, base = load_config(_config(tmp_path, ema=0.9, epochs=2, steps_per_epoch=3))
    t = Trainer(cfg, base)
    seen = []
    step = t._step

    def recording_step(*a):
        loss = step(*a)
        seen.append({k: v.detach().clone() for k, v in t.model.state_dict().items()})
        return loss
    t._step = recording_step
    t.fit()
    expected = {k: v.clone() for k, v in seen[0].items()}
    for w in seen[1:]:
        for k in expected:
            if w[k].is_floating_point():
                expected[k] = 0.9 * expected[k] + 0.1 * w[k]
    got = t.model.state_dict()
    weights = {k for k, _ in t.model.named_parameters()}
    moved = [k for k in weights if not torch.equal(seen[-1][k], expected[k])]
    assert moved  # the average differs from the last step's weights
    for k in moved:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-4, atol=1e-6)
    assert "ema" in torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)  # resumes with its average


def test_averaged_weights_get_batchnorm_statistics_measured_with_them(tmp_path):
    """The running statistics averaged along with the weights belong to no weights that ever ran
    (with five rejects per type they flattened the map: docs/ACCURACY.md). After training, the
    averaged model's BatchNorm statistics are measured anew on training batches, on a copy: the
    exported first BatchNorm's running mean is the mean of what that layer saw in those batches,
    the average's own statistics are left as they were, and the checkpoint keeps the exported
    weights for the scripts that load a finished run."""
    from train.trainer import NORM_BATCHES, Trainer
    cfg, base = load_config(_config(tmp_path, ema=0.9, epochs=2, steps_per_epoch=3))
    t = Trainer(cfg, base)
    name, first = next((n, m) for n, m in t.ema.module.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []  # the hook goes with the copy (deepcopy shares the function): the measured model's inputs
    first.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    t.fit()
    assert len(seen) == NORM_BATCHES
    measured = torch.cat(seen).float().mean(dim=(0, 2, 3))
    exported = t.model.get_submodule(name)
    torch.testing.assert_close(exported.running_mean, measured, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(first.running_mean, exported.running_mean)  # measured on a copy
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    for k, v in Trainer.exported_from_checkpoint(state).items():
        torch.testing.assert_close(v, t.model.state_dict()[k])


def test_unet_recipe_records_its_pseudo_defects(tmp_path):
    """The model's recipe says what the network learned a defect looks like, and the station's
    schema still accepts the recipe."""
    from edge.recipe import RECIPE_KEY, load_recipe
    from train.cli import recipe_for
    from train.methods import create
    cfg, _ = load_config(_config(tmp_path, method="unet", patch=64,
                                 options={"pseudo": {"strength": [0.15, 0.8], "colours": [1, 1, 3], "feather": 1.5}}))
    recipe = recipe_for(create(cfg), {"train_images": 20, "holdout_images": 4, "epochs": 1, "minutes": 0.1})
    pseudo = json.loads(recipe["training"]["pseudo_defects"])
    assert pseudo["strength"] == [0.15, 0.8] and pseudo["colours"] == [1, 1, 3] and pseudo["feather"] == 1.5
    assert load_recipe({RECIPE_KEY: json.dumps(recipe)}, "model.onnx", {}, "station.yaml").training["pseudo_defects"]


def test_cli_exit_2_on_missing_data(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("data: nowhere\n")
    res = subprocess.run([sys.executable, "-c", f"import sys; from train.cli import edge_train_main as m; sys.exit(m(['--config', {str(path)!r}]))"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"{path}: data: no such folder" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_two_process_ddp_with_torchrun(tmp_path):
    """torchrun, 2 CPU processes (gloo): both train, rank 0 writes the model."""
    path = _config(tmp_path, epochs=2, steps_per_epoch=3, holdout=0.0)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "train.cli_entry", "--config", str(path)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "run/train.json").read_text())["summary"]
    assert summary["world_size"] == 2 and (tmp_path / "run/model.onnx").is_file()


@pytest.mark.skipif(not (SHARED_DATA / "magnetic_tile").is_dir(), reason="../shared/data/magnetic_tile is absent")
def test_real_data_tree_is_read(tmp_path):
    from edge.images import good_images, test_items
    root = SHARED_DATA / "magnetic_tile"
    items = test_items(root)
    assert len(good_images(root)) == 761
    assert {i.kind for i in items} == {"good", "blowhole", "break", "crack", "fray", "uneven"}
    assert sum(i.mask is not None for i in items) == len([i for i in items if i.kind != "good"])
