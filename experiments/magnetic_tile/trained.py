"""Shared by the post-hoc scripts (whole_vs_tiled, feature_gauss, multiscale): their command line
(a run folder, the data, the network width) and the run's weights as edge-train exported them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from edge.recipe import read_recipe
from train.config import TrainConfig
from train.methods import create
from train.methods.unet.model import UNet
from train.trainer import Trainer


def arguments(doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "../../../shared/data/magnetic_tile")
    ap.add_argument("--width", type=int, default=8)
    return ap


def load(run: Path, width: int) -> UNet:
    """The run's U-Net in eval mode with the weights its model.onnx holds (a finished run's
    checkpoint keeps them; Trainer.exported_from_checkpoint); its stem and input standardisation as the
    run's recipe records perlin_seg's options (the method builds it)."""
    options = json.loads(read_recipe(run / "model.onnx").training["anomalies"])
    model = create(TrainConfig(data=".", width=width, options=options)).network()
    model.load_state_dict(Trainer.exported_from_checkpoint(torch.load(run / "checkpoint.pt", map_location="cpu",
                                                                      weights_only=True)))
    return model.eval()
