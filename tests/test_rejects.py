"""Learning from the station's own rejects: the archive -> edge-rejects -> rejects folder ->
edge-train loop, the defect paste, the loss that reads image-level labels, and the checks that
keep a rejects folder honest (no test image, no empty mask, only for methods that learn from it)."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_station, run_cli, textured  # noqa: E402

from edge.errors import InputError  # noqa: E402
from edge.images import reject_items  # noqa: E402
from train.rejects import BAG, Reject, crop_around_defect, load_rejects, paste_defect  # noqa: E402


def _rejects_cli(*args):
    return subprocess.run([sys.executable, "-m", "edge.rejects", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_confirmed_ng_parts_from_the_archive_become_a_rejects_folder(tmp_path):
    archive = tmp_path / "archive"
    cfg = make_station(tmp_path, extra_yaml=f"archive:\n  enabled: true\n  dir: {archive}\n")
    assert run_cli(["--config", str(cfg), "--quiet"]).returncode == 0
    listed = _rejects_cli("list", archive / "cam0")
    stems = [line.split()[0] for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and len(stems) == 2, listed.stderr
    dest = tmp_path / "rejects"
    res = _rejects_cli("confirm", archive / "cam0", stems[0], "--to", dest, "--mask", "regions")
    assert res.returncode == 0, res.stderr
    res = _rejects_cli("confirm", archive / "cam0", stems[1], "--to", dest)  # image-level label
    assert res.returncode == 0, res.stderr
    items = dict(reject_items(dest))
    assert sorted(p.stem for p in items) == sorted(stems)
    assert items[dest / f"{stems[0]}.png"] is not None and items[dest / f"{stems[1]}.png"] is None
    record = json.loads((archive / "cam0" / f"{stems[0]}.json").read_text())
    mask = cv2.imread(str(dest / f"{stems[0]}_mask.png"), cv2.IMREAD_GRAYSCALE)
    box = record["regions"][0]
    assert mask[box["y"] + box["h"] // 2, box["x"] + box["w"] // 2] == 255 and (mask == 0).mean() > 0.5
    rejects = load_rejects(dest, 128)
    assert sorted(r.mask is not None for r in rejects) == [False, True]
    assert "confirmed" in _rejects_cli("list", archive / "cam0", "--to", dest).stdout
    bad = _rejects_cli("confirm", archive / "cam0", "20990101T000000_cam0_7", "--to", dest)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "edge-rejects list" in bad.stderr


def test_a_rejects_folder_is_refused_with_one_line(tmp_path):
    (tmp_path / "r").mkdir()
    cv2.imwrite(str(tmp_path / "r/a_mask.png"), np.full((8, 8), 255, np.uint8))
    with pytest.raises(InputError, match="expected an image beside this mask"):
        reject_items(tmp_path / "r")
    cv2.imwrite(str(tmp_path / "r/a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "r/a_mask.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="expected a mask with defect pixels"):
        load_rejects(tmp_path / "r", 16)


def test_rejects_are_read_at_the_runs_working_scale(tmp_path):
    """A run that works at a smaller scale sees its rejects, and their masks, as the station
    would: resized by the same factor."""
    (tmp_path / "r").mkdir()
    img = (textured(3, 400, 600) * 255).astype(np.uint8)
    mask = np.zeros((400, 600), np.uint8)
    mask[100:140, 200:260] = 255
    cv2.imwrite(str(tmp_path / "r/a.png"), img)
    cv2.imwrite(str(tmp_path / "r/a_mask.png"), mask)
    (own,), (half,) = load_rejects(tmp_path / "r", 64), load_rejects(tmp_path / "r", 64, 0.5)
    assert own.image.shape == own.mask.shape == (400, 600) and half.image.shape == half.mask.shape == (200, 300)
    assert np.argwhere(half.mask).min(0).tolist() == [50, 100] and half.mask.sum() == 20 * 30
    assert abs(float(half.image.mean()) - float(own.image.mean())) < 1e-3


def _reject(seed=0):
    rng = np.random.default_rng(seed)
    img = (textured(seed, 200, 300) * 0.5 + 0.25).astype(np.float32)
    mask = np.zeros((200, 300), np.uint8)
    mask[50:64, 100:150] = 1
    mask[150:190, 10:16] = 1
    img[mask > 0] -= 0.2 + rng.uniform(0, 0.05)
    return Reject(img, mask, "r.png")


def test_pasted_defects_land_where_their_mask_says():
    r = _reject()
    rng = np.random.default_rng(1)
    for _ in range(200):
        good = (textured(int(rng.integers(100)), 128, 128) * 0.5 + 0.3).astype(np.float32)
        out, mask = paste_defect(good, r, rng)
        assert out.shape == good.shape and out.dtype == np.float32 and mask.any()
        changed = np.abs(out - good) > 0.1
        assert changed[mask > 0].mean() > 0.6  # the defect keeps its contrast (no washed-out clone)
        assert not changed[cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0].any()
        crop, cmask = crop_around_defect(r, 128, rng)
        assert crop.shape == (128, 128) and cmask.any()


def test_image_loss_punishes_a_false_blob_and_reads_bags_as_any_crop():
    from train.methods.perlin_seg.loss import segmentation_loss
    loss = segmentation_loss(1.0, 16)
    clean = torch.zeros(1, 1, 32, 32)
    quiet = torch.full((1, 1, 32, 32), 0.01)
    blob = quiet.clone()
    blob[..., 10:14, 10:14] = 0.99
    plain = segmentation_loss(0.0, 16)
    assert loss(blob, clean) - loss(quiet, clean) > 2 * (plain(blob, clean) - plain(quiet, clean))
    bag = torch.full((2, 1, 32, 32), BAG)
    one_hit = torch.cat([blob, quiet])  # the bag's defect is in one of its crops
    assert loss(one_hit, bag) < loss(torch.cat([quiet, quiet]), bag) / 3
    assert torch.isfinite(loss(one_hit, bag))


def test_rejects_are_refused_when_they_overlap_the_test_set_or_the_method_ignores_them(tmp_path):
    import yaml

    from train.config import load_config
    data = tmp_path / "data"
    (data / "train/good").mkdir(parents=True)
    (data / "test/crack").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(data / "train/good" / f"{i}.png"), (textured(i, 64, 64) * 255).astype(np.uint8))
    defect = (textured(9, 64, 64) * 255).astype(np.uint8)
    cv2.imwrite(str(data / "test/crack/c.png"), defect)
    (tmp_path / "rejects").mkdir()
    cv2.imwrite(str(tmp_path / "rejects/renamed.png"), defect)  # the same pixels under another name
    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump({"data": "data", "rejects": "rejects"}))
    with pytest.raises(InputError, match="rejects: expected rejects apart from the test set: renamed.png"):
        load_config(cfg)
    (data / "test/crack/c.png").unlink()
    assert load_config(cfg)[0].rejects == "rejects"
    cfg.write_text(yaml.safe_dump({"data": "data", "rejects": "rejects", "method": "renet_d"}))
    with pytest.raises(InputError, match="rejects: expected null: renet_d does not learn from rejects"):
        load_config(cfg)


def test_training_with_masked_and_image_level_rejects(tmp_path, capsys):
    """A short run with one masked and one mask-less reject: batches hold real crops, pasted
    defects and a bag; hard negatives are mined; the recipe says how many rejects it learned from;
    the summary says how many of them the calibrated model judges NG, and edge-train warns when
    that is under half (a six-step model), since such a model learned nothing usable from them."""
    import yaml

    from edge.recipe import read_recipe
    from train.cli import edge_train_main
    data = tmp_path / "data/train/good"
    data.mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(data / f"{i}.png"), (textured(i, 160, 200) * 255).astype(np.uint8))
    rejects = tmp_path / "rejects"
    rejects.mkdir()
    r = _reject(3)
    cv2.imwrite(str(rejects / "masked.png"), (r.image * 255).astype(np.uint8))
    cv2.imwrite(str(rejects / "masked_mask.png"), r.mask * 255)
    cv2.imwrite(str(rejects / "label_only.png"), (_reject(4).image * 255).astype(np.uint8))
    cfg = {"data": str(tmp_path / "data"), "rejects": str(rejects), "out": str(tmp_path / "run"),
           "time_budget_min": 5, "epochs": 3, "steps_per_epoch": 2, "batch": 8, "holdout": 0.34,
           "options": {"mine_every": 1, "reject_share": 0.5, "paste_share": 0.25}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    assert edge_train_main(["--config", str(tmp_path / "t.yaml")]) == 0
    summary = json.loads((tmp_path / "run/train.json").read_text())["summary"]
    assert summary["rejects"] == 2 and summary["rejects_masked"] == 1 and summary["steps"] == 6
    assert read_recipe(tmp_path / "run/model.onnx").training["rejects"] == "2 (1 with masks)"
    from edge.schema import to_dict
    from train.evaluate import rejects_caught
    from train.export import set_recipe
    model, files = tmp_path / "run/model.onnx", [rejects / "masked.png", rejects / "label_only.png"]
    assert rejects_caught(model, files) == summary["rejects_caught"]
    warned = "judges only" in capsys.readouterr().err
    assert warned == (summary["rejects_caught"] < 0.5)
    recipe = to_dict(read_recipe(model))
    for threshold, caught in ((0.0, 1.0), (1.5, 0.0)):  # every part NG, none NG
        set_recipe(model, {**recipe, "decision": {**recipe["decision"], "score_threshold": threshold}})
        assert rejects_caught(model, files) == caught


def test_a_batch_mixes_real_pasted_bagged_and_hard_crops():
    from train.config import TrainConfig
    from train.data import BatchSource
    from train.methods import create

    method = create(TrainConfig(data=".", options={"reject_share": 0.5, "paste_share": 0.25}))
    method.hard = [(0, 5, 190)]  # as the epoch's mining left them
    source = BatchSource([textured(i, 160, 200).astype(np.float32) for i in range(3)], np.random.default_rng(0), 128,
                         [_reject(1), Reject(_reject(2).image, None, "label_only.png")])
    x, y = method.make_batch(source, 16, stage=1)
    assert x.shape == y.shape == (16, 128, 128)
    kinds = y.reshape(16, -1)
    bags = kinds.min(1) < 0
    assert bags.any() and (kinds[bags].max(1) <= BAG).all()  # bags of crops of the label-only reject
    assert (kinds[~bags].max(1) > 0).sum() >= 8  # real crops, pasted defects, synthetic anomalies
