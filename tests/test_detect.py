"""edge/detect: the fused Numba kernel against the independent NumPy/SciPy reference, and the other methods."""

import numpy as np
import pytest
from conftest import textured

from edge.detect import DctFusionDetector, ProbabilityDetector, SquaredResidualDetector, make_detector
from edge.detect.regions import find_regions
from edge.recipe import DctFusion, Detect, Probability, SquaredResidual
from testkit.dct_reference import dct_feature, dct_fusion_reference


def _pair(kind, h, w, seed):
    rng = np.random.default_rng(seed)
    if kind == "random":
        src = rng.random((h, w), dtype=np.float32)
        rec = (src + rng.normal(0, 0.05, (h, w))).astype(np.float32)
    else:  # textured surface; the reconstruction is a blurred copy, as an autoencoder's would be
        import cv2
        src = textured(seed, h, w).astype(np.float32)
        rec = cv2.GaussianBlur(src, (0, 0), 1.5)
    # a defect the reconstruction removed: a dark pit in src only
    y, x = h // 3, w // 2
    src[y:y + 9, x:x + 9] -= 0.4
    return src, rec


@pytest.mark.parametrize("kind", ["random", "textured"])
@pytest.mark.parametrize("h,w", [(512, 512), (256, 384), (300, 333), (100, 90)])
@pytest.mark.parametrize("n,s,l", [(32, 32, 8), (16, 8, 4), (32, 16, 8), (8, 8, 8), (24, 40, 5)])
def test_numba_kernel_equals_reference(kind, h, w, n, s, l):
    src, rec = _pair(kind, h, w, seed=h + w + n)
    p = DctFusion(patch=n, stride=s, block=l, epsilon=0.02, gamma=3.0)
    mask, diff, mu, sigma, _ = DctFusionDetector(p).analyse(src, rec)
    ref_mask, ref_diff, ref_mu, ref_sigma = dct_fusion_reference(src, rec, n, s, l, 0.02, 3.0)
    assert diff.shape == ref_diff.shape
    np.testing.assert_allclose(diff, ref_diff, atol=2e-5)
    assert mu == pytest.approx(ref_mu, rel=1e-6)
    assert sigma == pytest.approx(ref_sigma, rel=1e-5)
    # a pixel may only disagree where a feature sits within float rounding of epsilon
    assert np.array_equal(mask, ref_mask)
    assert ref_mask.sum() > 0, "the painted pit must be found, or the comparison proves little"


def test_feature_matches_equation_19_by_hand():
    """Eq. 17-19 written out with explicit cosines for one 8x8 patch, L = 4."""
    rng = np.random.default_rng(3)
    patch = rng.random((8, 8))
    n, l = 8, 4
    c = lambda u: np.sqrt(1 / n) if u == 0 else np.sqrt(2 / n)
    i = np.arange(n)
    total = 0.0
    for u in range(l):
        for v in range(l):
            f = c(u) * c(v) * np.sum(patch * np.outer(np.cos((i + 0.5) * np.pi * u / n), np.cos((i + 0.5) * np.pi * v / n)))
            if (u, v) != (0, 0):
                total += abs(f)
    assert dct_feature(patch, l) == pytest.approx(total / (l * l - 1), rel=1e-12)
    src = np.zeros((8, 8), np.float32)
    src[:] = patch
    _, diff, _, _, _ = DctFusionDetector(DctFusion(patch=8, stride=8, block=4, epsilon=0)).analyse(src, np.zeros_like(src))
    assert diff[0, 0] == pytest.approx(total / 15, rel=1e-5)


def test_identical_images_give_no_defect():
    src = textured(1, 256, 256).astype(np.float32)
    det = DctFusionDetector(DctFusion())(src, src.copy())
    assert det.regions == [] and det.mask.sum() == 0 and det.score == 0.0


def test_dct_fusion_finds_the_painted_defect_where_it_is():
    src, rec = _pair("textured", 512, 512, seed=5)
    det = DctFusionDetector(DctFusion(epsilon=0.02))(src, rec)
    assert det.regions, "expected a region at the pit"
    r = det.regions[0]
    y, x = 512 // 3, 512 // 2
    assert r.x <= x + 4 <= r.x + r.w and r.y <= y + 4 <= r.y + r.h
    assert r.area <= 81 + 40  # the pit (81 px) plus a rim from the reconstruction's blur at most


def test_frame_smaller_than_a_patch_is_handled():
    src = np.ones((20, 20), np.float32)
    det = DctFusionDetector(DctFusion())(src, src * 0.5)
    assert det.regions == [] and det.mask.shape == (20, 20)


def test_squared_residual_adaptive_threshold_and_floor():
    src = textured(2, 256, 256).astype(np.float32)
    rec = src.copy()
    rng = np.random.default_rng(0)
    rec += rng.normal(0, 0.01, rec.shape).astype(np.float32)
    src[100:110, 50:70] += 0.5
    det = SquaredResidualDetector(SquaredResidual(kernel=5, k=3.0))(src, rec)
    big = max(det.regions, key=lambda r: r.area)
    assert 45 <= big.x + big.w / 2 <= 75 and 95 <= big.y + big.h / 2 <= 115
    # a calibrated floor above the defect's filtered energy suppresses it
    none = SquaredResidualDetector(SquaredResidual(kernel=5, k=3.0, floor=1.0))(src, rec)
    assert none.regions == []


def test_probability_threshold():
    prob = np.zeros((64, 64), np.float32)
    prob[10:20, 30:35] = 0.9
    prob[40, 40] = 0.49
    det = ProbabilityDetector(Probability(threshold=0.5))(np.zeros_like(prob), prob)
    assert [(r.x, r.y, r.w, r.h, r.area) for r in det.regions] == [(30, 10, 5, 10, 50)]
    assert det.score == pytest.approx(0.9)


def test_regions_area_bbox_peak_and_order():
    mask = np.zeros((50, 60), np.uint8)
    score = np.zeros((50, 60), np.float32)
    mask[5:8, 5:9] = 1            # 12 px
    score[6, 6] = 7.0
    mask[20:30, 40:45] = 1        # 50 px
    score[25, 41] = 3.0
    mask[40, 10] = mask[41, 11] = 1  # diagonal neighbours: one region under 8-connectivity
    regions = find_regions(mask, score)
    assert [(r.x, r.y, r.w, r.h, r.area) for r in regions] == [(40, 20, 5, 10, 50), (5, 5, 4, 3, 12), (10, 40, 2, 2, 2)]
    assert regions[0].peak == 3.0 and regions[1].peak == 7.0


def test_make_detector_dispatch():
    assert isinstance(make_detector(Detect(method="squared_residual")), SquaredResidualDetector)
    assert isinstance(make_detector(Detect(method="probability")), ProbabilityDetector)
    assert isinstance(make_detector(Detect()), DctFusionDetector)
