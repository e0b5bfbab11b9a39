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
