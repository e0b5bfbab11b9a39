import json

import numpy as np
import pytest

from edge.preprocess import Preprocessor, ramp_weights, tile_origins
from edge.recipe import Preprocess


def test_tile_origins_cover_and_stay_inside():
    for length, tile, overlap in [(512, 256, 0), (1000, 256, 32), (256, 256, 0), (300, 256, 16)]:
        starts = tile_origins(length, tile, overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            assert 0 <= s and s + tile <= length
            covered[s:s + tile] = True
        assert covered.all()
        steps = np.diff(starts)
        assert (steps <= tile - overlap).all() if len(steps) else True


@pytest.mark.parametrize("blend", ["mean", "ramp"])
@pytest.mark.parametrize("h,w,overlap", [(512, 512, 0), (700, 530, 0), (700, 530, 24), (200, 180, 0), (256, 256, 0),
                                         (300, 600, 64), (1000, 270, 64), (250, 300, 64)])
def test_tiles_then_stitch_is_identity(h, w, overlap, blend):
    rng = np.random.default_rng(0)
    pre = Preprocessor(Preprocess(tile_overlap=overlap, tile_blend=blend), (256, 256))
    x = rng.random((h, w), dtype=np.float32)
    batch = pre.tiles(x)
    assert batch.shape[1:] == (1, 256, 256)
    np.testing.assert_allclose(pre.stitch(batch), x, atol=1e-6)


def test_ramp_weights_cross_fade_across_each_overlap():
    for length, overlap in [(448, 64), (300, 64), (1000, 32), (600, 100)]:
        starts = tile_origins(length, 256, overlap)
        weights = ramp_weights(starts, 256)
        total, cover = np.zeros(length), np.zeros(length)
        for s, w in zip(starts, weights):
            assert (w > 0).all() and (w <= 1).all()
            total[s:s + 256] += w
            cover[s:s + 256] += 1
        pairs = cover <= 2  # where at most two tiles meet (600 by 100: the last tile is aligned to the end)
        np.testing.assert_allclose(total[pairs], 1, atol=1e-6)  # a pure cross-fade
        for w in weights[1:]:
            assert w[0] < 0.02  # a tile's inner border counts least


@pytest.mark.parametrize("blend,at_border", [("mean", 0.5), ("ramp", 7.5 / 64)])
def test_a_tile_border_artefact_counts_by_the_blend(blend, at_border):
    """Tile 0 of a 256x448 frame (tiles at x 0 and 192) marks its last 8 columns, which tile 1
    sees with 184-192 px of context to their right: averaging keeps half of it, the ramp an eighth."""
    pre = Preprocessor(Preprocess(tile_overlap=64, tile_blend=blend), (256, 256))
    pre.tiles(np.zeros((256, 448), np.float32))
    out = np.zeros((2, 1, 256, 256), np.float32)
    out[0, 0, :, 248:] = 1
    stitched = pre.stitch(out)
    assert stitched[:, 248:256].max() == pytest.approx(at_border, abs=1e-6)
    assert stitched[:, :192].max() == 0 and stitched[:, 256:].max() == 0


@pytest.mark.parametrize("h,w", [(100, 70), (512, 512), (130, 600), (16, 33)])
def test_a_whole_frame_model_gets_the_frame_in_one_piece_padded_to_its_multiple(h, w):
    """(0, 0): dynamic height and width. One 'tile', the frame reflect-padded at the bottom and
    right to multiples of input_multiple; the output is cropped back to the frame."""
    rng = np.random.default_rng(1)
    pre = Preprocessor(Preprocess(tile_overlap=32, input_multiple=16), (0, 0))
    x = rng.random((h, w), dtype=np.float32)
    batch = pre.tiles(x)
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    assert batch.shape == (1, 1, ph, pw) and pre.tile_count(h, w) == 1
    np.testing.assert_array_equal(batch[0, 0, :h, :w], x)
    if ph > h:  # mirrored below the last row, not repeated, not zero
        np.testing.assert_array_equal(batch[0, 0, h, :w], x[h - 2])
    np.testing.assert_allclose(pre.stitch(batch), x, atol=0)


def test_normalisation_resize_and_grayscale():
    img = np.full((100, 200, 3), (10, 20, 30), np.uint8)
    pre = Preprocessor(Preprocess(size=(50, 100), scale=1 / 255, mean=0.5, std=0.25), (50, 100))
    x = pre.to_model_space(img)
    gray = 0.114 * 10 + 0.587 * 20 + 0.299 * 30  # OpenCV BT.601 on BGR
    assert x.shape == (50, 100) and x.dtype == np.float32
    np.testing.assert_allclose(x, (round(gray) / 255 - 0.5) / 0.25, atol=1e-5)


def test_calibration_tiles_are_the_evenly_thinned_tiles_without_holding_them_all(tmp_path):
    import cv2

    from calib.images import model_tiles
    from edge.preprocess import Preprocessor
    from edge.recipe import Preprocess
    files = []
    for i, (h, w) in enumerate([(300, 500), (128, 128), (700, 260), (200, 900)]):
        files.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(files[-1]), np.random.default_rng(i).integers(0, 255, (h, w), dtype=np.uint8))
    p = Preprocess(tile_overlap=32)
    pre = Preprocessor(p, (128, 128), 1)
    every = np.concatenate([pre.tiles(pre.to_model_space(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))).copy()
                            for f in files])
    for cap in (7, 20, 10_000):
        want = every[np.linspace(0, len(every) - 1, min(cap, len(every))).round().astype(int)]
        assert np.array_equal(model_tiles(files, p, (1, 1, 128, 128), cap), want)


def test_two_scales_go_in_one_batch_and_fuse_by_the_weighted_maximum():
    """With a coarse scale a frame's tiles are its own, then those of the frame resized (area
    averaging), in one batch; the stitched map is the maximum of the native map and the coarse
    map brought back to the frame's size, weighted so that the larger weight is 1."""
    from dataclasses import replace

    import cv2

    from edge.preprocess import scaled_frame
    rng = np.random.default_rng(0)
    x = rng.random((200, 150), dtype=np.float32)
    one = Preprocessor(Preprocess(tile_overlap=16), (64, 64))
    native, small = one.tiles(x).copy(), one.tiles(scaled_frame(x, 0.5)).copy()
    assert scaled_frame(x, 0.5).shape == (100, 75)
    assert np.allclose(scaled_frame(x, 0.5), cv2.resize(x, (75, 100), interpolation=cv2.INTER_AREA))
    two = Preprocessor(Preprocess(tile_overlap=16, coarse_scale=0.5, coarse_weight=0.5), (64, 64))
    batch = two.tiles(x)
    assert len(batch) == two.tile_count(200, 150) == len(native) + len(small)
    assert np.array_equal(batch[:len(native)], native) and np.array_equal(batch[len(native):], small)
    up = cv2.resize(scaled_frame(x, 0.5), (150, 200), interpolation=cv2.INTER_LINEAR)
    fused = two.stitch(batch.copy())  # an identity model: each tile's map is the tile
    assert np.abs(fused - np.maximum(x, 0.5 * up)).max() < 1e-5
    maps = two.scale_maps(batch.copy())
    assert np.abs(maps[0] - x).max() < 1e-5 and np.abs(maps[1] - up).max() < 1e-5
    heavy = Preprocessor(replace(two.p, coarse_weight=4.0), (64, 64))  # the native map is weighted down instead
    fused = heavy.stitch(heavy.tiles(x).copy())
    assert np.abs(fused - np.maximum(x / 4, up)).max() < 1e-5 and fused.max() <= 1
    lease = heavy.stitch_leased(heavy.tiles(x).copy(), (200, 150))
    assert np.array_equal(lease.array, fused)
    lease.release()
    planed = Preprocessor(replace(two.p, scale_plane=True), (64, 64), channels=2)  # each tile says its scale
    batch = planed.tiles(x)
    assert batch.shape == (len(native) + len(small), 2, 64, 64)
    assert np.array_equal(batch[:, :1], two.tiles(x)) and (batch[:len(native), 1] == 0).all()
    assert (batch[len(native):, 1] == 1).all()
    pinned = np.full(batch.shape, 7.0, np.float32)  # a runner's own input buffer (the GPU's pinned one) gets them too
    assert np.array_equal(planed.tiles(x, out=pinned), batch)
    rgb = planed.to_model_space(np.zeros((20, 30, 3), np.uint8))  # the image is grey, the plane comes on top
    assert rgb.shape == (20, 30)


def test_two_scales_need_a_model_with_fixed_tiles_and_a_probability_map():
    from edge.errors import InputError
    from edge.recipe import Recipe, load_recipe, recipe_json
    from edge.schema import load
    with pytest.raises(InputError, match="coarse_scale.*whole-frame"):
        Preprocessor(Preprocess(coarse_scale=0.5), (0, 0))
    rec = {"detect": {"method": "dct_fusion"}, "preprocess": {"coarse_scale": 0.5}}
    with pytest.raises(InputError, match="preprocess.coarse_scale.*probability"):
        load(Recipe, rec, "m.onnx", "edge_recipe")
    ok = load(Recipe, {**rec, "detect": {"method": "probability"}}, "m.onnx")
    assert load_recipe({"edge_recipe": recipe_json(ok)}, "m.onnx").preprocess.coarse_scale == 0.5
    with pytest.raises(InputError, match="preprocess.scale_plane.*without a coarse_scale"):
        load(Recipe, {"detect": {"method": "probability"}, "preprocess": {"scale_plane": True}}, "m.onnx")
    older = {"schema": 4, "detect": {"method": "probability"}}  # a model made before two scales: one scale
    assert load_recipe({"edge_recipe": json.dumps(older)}, "old.onnx").preprocess.coarse_scale is None


def test_a_working_scale_resizes_every_frame_before_the_model():
    """preprocess.working_scale: the model-space frame is the frame resized by the factor (area
    averaging, as training resizes its images); refused beside a fixed size; older recipes keep
    their frames' own scale."""
    from edge.errors import InputError
    from edge.preprocess import scaled_frame
    from edge.recipe import Recipe, load_recipe
    from edge.schema import load
    frame = (np.arange(200 * 300) % 251).astype(np.uint8).reshape(200, 300)
    pre = Preprocessor(Preprocess(working_scale=0.5, tile_overlap=16), (64, 64))
    x = pre.to_model_space(frame)
    assert x.shape == pre.model_hw(200, 300) == (100, 150)
    assert np.allclose(x, scaled_frame(frame.astype(np.float32) / 255, 0.5), atol=1e-6)
    assert pre.tile_count(*pre.model_hw(200, 300)) == 2 * 3
    assert Preprocessor(Preprocess(size=(64, 64)), (64, 64)).model_hw(200, 300) == (64, 64)
    assert Preprocessor(Preprocess(), (64, 64)).model_hw(200, 300) == (200, 300)
    with pytest.raises(InputError, match="preprocess.working_scale.*expected 1 with a fixed size"):
        load(Recipe, {"preprocess": {"size": [64, 64], "working_scale": 0.5}}, "m.onnx", "edge_recipe")
    with pytest.raises(InputError, match="working_scale.*> 0 and <= 1"):
        load(Recipe, {"preprocess": {"working_scale": 2}}, "m.onnx", "edge_recipe")
    older = {"schema": 5, "detect": {"method": "probability"}}  # a model made before working scales
    assert load_recipe({"edge_recipe": json.dumps(older)}, "old.onnx").preprocess.working_scale == 1.0
