"""The training-method contract: a new method is a folder and one line, it sees only what it is
handed (a batch source, the model once an epoch), owns its options, and configs written before
each method owned its options still load to the same settings."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from test_train_pipeline import _config  # noqa: E402

from edge.errors import InputError  # noqa: E402
from edge.schema import load  # noqa: E402
from train.config import TrainConfig, load_config, migrate  # noqa: E402
from train.methods import METHODS, create  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

TOY = '''
"""A toy method: a 3x3 convolution that learns to reproduce crops with brightness jitter."""
import numpy as np
import torch
from train.methods.base import Method, register

SEEN = []  # what the trainer handed the method, by type name


@register
class ToyMethod(Method):
    name = "toy"
    summary = "a 3x3 convolution reproducing its input"
    size, patch, batch = 64, 32, 8

    def network(self):
        return torch.nn.Conv2d(1, 1, 3, padding=1)

    def loss(self):
        return torch.nn.functional.mse_loss

    def make_batch(self, source, n, stage):
        SEEN.append(type(source).__name__)
        clean = source.crops(n)
        return np.clip(clean * source.rng.uniform(0.9, 1.1, (n, 1, 1)), 0, 1).astype(np.float32), clean

    def on_epoch(self, epoch, source, model, device):
        SEEN.append(f"epoch {epoch} {type(model).__name__}")
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """train/methods/toy/ as a folder of its own, registered by one import line."""
    pkg = tmp_path / "pkg" / "toy_method"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(pkg.parent))
    module = importlib.import_module("toy_method")  # the one line
    yield module
    METHODS.pop("toy", None)
    sys.modules.pop("toy_method", None)


def test_a_new_method_is_a_folder_and_one_line(tmp_path, toy):
    from train.cli import edge_train_main
    assert edge_train_main(["--config", str(_config(tmp_path, method="toy", width=None, patch=None, size=None,
                                                   batch=None, epochs=2, steps_per_epoch=3))]) == 0
    assert (tmp_path / "run/model.onnx").is_file()
    # it got the batch source, never the trainer, and the model at each epoch's start
    assert set(toy.SEEN) >= {"BatchSource", "epoch 0 Conv2d", "epoch 1 Conv2d"}
    assert not any("Trainer" in s for s in toy.SEEN)
    with pytest.raises(InputError) as err:  # a method without options refuses any
        load_config(_config(tmp_path / "b", method="toy", width=None, options={"share": 1}))
    assert err.value.key == "options" and "takes none" in err.value.line()


def test_each_run_gets_its_own_method_with_its_own_state(tmp_path):
    cfg, base = load_config(_config(tmp_path, method="skip_ae", size=None, patch=None, width=None))
    a, b = create(cfg), create(cfg)
    a.on_step()
    assert a.aw is not b.aw and a.aw.sigma != b.aw.sigma  # one run's AW-SSIM schedule is not another's
    assert a.r.patch == 128 and a.r.lr == pytest.approx(1e-3) and a.r.size == 256  # the method's defaults, typed


def _parse(path: Path):
    raw = yaml.safe_load(path.read_text())
    migrate(raw, str(path))
    return load(TrainConfig, raw, str(path))


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*/*.yaml")), ids=lambda p: p.name)
def test_every_recorded_config_still_loads(path):
    cfg = _parse(path)
    create(cfg, str(path))


def test_older_top_level_sections_mean_what_they_meant(tmp_path):
    """`pseudo`, `input_norm`, `stage2` and `loss` at the top level are read as the method's options."""
    old = {"method": "unet", "data": ".", "input_norm": True, "pseudo": {"strength": [0.7, 1.0], "feather": 0.0},
           "loss": {"alpha": 0.3}}
    notes = migrate(old, "old.yaml")
    new = {"method": "unet", "data": ".", "options": {"input_norm": True, "pseudo": {"strength": [0.7, 1.0],
                                                                                         "feather": 0.0}}}
    assert create(load(TrainConfig, old, "old.yaml")).options == create(load(TrainConfig, new, "new.yaml")).options
    assert "old.yaml: loss.alpha ignored (unet does not use it)" in notes
    skip = {"method": "skip_ae", "data": ".", "stage2": {"epochs": 2, "alpha": 1.0}, "loss": {"sigma0": 0.7}}
    migrate(skip, "s.yaml")
    o = create(load(TrainConfig, skip, "s.yaml")).options
    assert o.stage2.epochs == 2 and o.sigma0 == 0.7
    renet = {"method": "renet_d", "data": ".", "loss": {"alpha": 0.4, "sigma0": 1.0}}
    migrate(renet, "r.yaml")
    assert create(load(TrainConfig, renet, "r.yaml")).options.alpha == 0.4


def test_hard_negatives_are_mined_from_the_source_at_epoch_start():
    """perlin_seg keeps the mined places in the method, replaced whole (the batch thread reads them)."""
    from train.data import BatchSource
    method = create(TrainConfig(data=".", options={"mine_every": 1}))
    images = [np.random.default_rng(i).random((160, 160), dtype=np.float32) for i in range(4)]
    source = BatchSource(images, np.random.default_rng(0), 128)
    model = method.network().eval()
    method.on_epoch(0, source, model, torch.device("cpu"))
    assert method.hard == []  # not before the first epoch
    method.on_epoch(1, source, model, torch.device("cpu"))
    first = method.hard
    assert first and all(0 <= k < 4 and 0 <= y < 160 and 0 <= x < 160 for k, y, x in first)
    method.on_epoch(2, source, model, torch.device("cpu"))
    assert method.hard is not first


def test_perlin_seg_crop_sets_the_station_tile_and_its_overlap():
    """The training crop is the station's tile: the default's 256-px tiles overlap by 64, a patch
    of 128 by 32, a config's tile_overlap by that, and the recipe says so."""
    from train.cli import recipe_for
    summary = {"train_images": 1, "holdout_images": 0, "epochs": 1, "minutes": 0.1}
    for patch, overlap in ((None, 64), (128, 32), (64, 16)):
        method = create(TrainConfig(data=".", patch=patch))
        assert (method.r.export, method.r.tile_overlap) == (patch or 256, overlap)
        assert method.export_side() == (patch or 256) and method.r.image_side == (patch or 256)
        assert recipe_for(method, summary)["preprocess"]["tile_overlap"] == overlap
    for patch, overlap in ((None, 0), (128, 8)):  # the config's overlap, at any tile
        method = create(TrainConfig(data=".", patch=patch, tile_overlap=overlap))
        assert method.r.tile_overlap == overlap and recipe_for(method, summary)["preprocess"]["tile_overlap"] == overlap
    for blend, want in ((None, "ramp"), ("mean", "mean")):  # the tiles' blend: the config's, or the recipe's default
        method = create(TrainConfig(data=".", tile_blend=blend))
        assert recipe_for(method, summary)["preprocess"]["tile_blend"] == want
    unet = create(TrainConfig(data=".", method="unet", patch=64))
    assert unet.r.export is None and unet.r.tile_overlap == 0 and unet.export_side() == 256  # resized frames
