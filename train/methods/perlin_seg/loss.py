"""perlin_seg's loss and its hard-negative search.

The pixel loss (BCE + Dice, seed 000) hardly punishes a small false blob on a clean crop: a few
wrong pixels among 16,384 cost little, yet the station's image score is the map's peak, so that
blob is a false alarm. The image-level term scores each crop by the mean of its top-k
probabilities and asks it to say whether the crop holds a defect: a clean crop's peak is pushed
down as hard as a defect's is pushed up. Crops of a mask-less reject (a bag, target BAG - i)
have no pixel target; their bag's best crop must say "defect" (multiple-instance learning).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...losses import _dice
from ...rejects import BAG


def segmentation_loss(image_weight: float, topk: int):
    def loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = prob.float()
        lowest = target.flatten(1).amin(1)
        pixel = lowest >= 0
        total = prob.new_zeros(())
        if pixel.any():
            p, t = prob[pixel], target[pixel]
            total = total + F.binary_cross_entropy(p, t) + _dice(p, t)
        if image_weight:
            k = min(topk, prob[0].numel())
            crop = prob.flatten(1).topk(k, dim=1).values.mean(1)
            scores = [crop[pixel]]
            labels = [(target[pixel].flatten(1).amax(1) > 0.5).float()]
            for bag in torch.unique(lowest[~pixel]):
                scores.append(crop[lowest == bag].amax().reshape(1))
                labels.append(prob.new_ones(1))
            s = torch.cat(scores).clamp(1e-6, 1 - 1e-6)
            total = total + image_weight * F.binary_cross_entropy(s, torch.cat(labels))
        return total
    return loss


assert BAG < 0  # bags are told apart from pixel targets (0..1) by sign


@torch.no_grad()
def mine_hard_negatives(model: torch.nn.Module, images: list, rng: np.random.Generator, device,
                        count: int = 48, keep: int = 16, planes=None) -> list[tuple[int, int, int]]:
    """(image index, y, x) of the highest-scoring pixel of the `keep` good training images, out of
    `count` drawn, that the network now scores highest: where it would raise a false alarm.
    `planes`: per image, the value of a model's scale plane (two scales), None without one."""
    was_training = model.training
    model.eval()
    multiple = getattr(model, "input_multiple", 16)
    found = []
    try:
        for k in rng.choice(len(images), min(count, len(images)), replace=False):
            img = images[int(k)]
            h, w = img.shape
            ph, pw = -h % multiple, -w % multiple
            x = np.pad(img, ((0, ph), (0, pw)), mode="reflect") if ph or pw else img
            x = np.ascontiguousarray(x, np.float32)[None]
            if planes is not None:
                x = np.concatenate([x, np.full_like(x, float(planes[int(k)]))])
            out = model(torch.from_numpy(x)[None].to(device))[0, 0, :h, :w]
            flat = int(torch.argmax(out))
            found.append((float(out.flatten()[flat]), int(k), flat // w, flat % w))
    finally:
        model.train(was_training)
    found.sort(reverse=True)
    return [(k, y, x) for _, k, y, x in found[:keep]]
