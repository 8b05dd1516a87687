import numpy as np
import pytest
import torch
from torchvision import tv_tensors

import pixelwise.data.fs_stereo as fs_stereo
import pixelwise.data.scenes as scenes
from pixelwise.data.fs_stereo import (GARMENT_DEPTH, VARIANTS, FSStereo, generate_fs_stereo, load_fs_stereo,
                                      render_fs_stereo)
from pixelwise.data.stereo_render import Layer, layer_disparity, render_stereo_pair
from pixelwise.errors import PixelwiseError
from tests.data.conftest import solid_fashion_mnist

H, W = 6, 16


@pytest.fixture
def solid_items(monkeypatch):
    """Fashion-MNIST replaced by solid white squares (train classes 0-4, test classes 5-9)."""
    fake = solid_fashion_mnist
    monkeypatch.setattr(scenes, "load_fashion_mnist", fake)
    monkeypatch.setattr(fs_stereo, "load_fashion_mnist", fake)


def texture(width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((H, width))


def test_integer_shift_of_one_layer():
    k = 3
    tex = texture(W + k)
    r = render_stereo_pair([Layer(tex, np.ones_like(tex), (k, 0.0, 0.0))], W)
    cols = np.arange(W)[None].repeat(H, 0)
    assert np.array_equal(r.left, tex[:, :W])
    assert np.allclose(r.right, tex[:, k:k + W], atol=1e-12)     # x_right = x_left - k
    assert np.all(r.disparity == k) and np.all(r.disparity_right == k)
    assert r.valid.all() and r.valid_right.all()
    assert np.array_equal(r.occluded, cols < k)                   # their match lies left of the right frame
    assert np.array_equal(r.occluded_right, cols + k > W - 1)     # right of the left frame


def test_subpixel_shift_interpolates_linearly():
    d = 2.5
    tex = texture(W + 3, seed=1)
    r = render_stereo_pair([Layer(tex, np.ones_like(tex), (d, 0.0, 0.0))], W)
    expected = 0.5 * (tex[:, 2:2 + W] + tex[:, 3:3 + W])
    assert np.allclose(r.right, expected, atol=1e-12)
    assert np.allclose(r.disparity, d) and np.allclose(r.disparity_right, d)
    assert np.array_equal(r.occluded[0], np.arange(W) <= 2)       # x - 2.5 < 0


def test_near_layer_occludes_a_band_beside_it():
    # Background at disparity 2, an opaque 3x4 square at disparity 6 over columns 8-11 of rows 1-3.
    bg, fg = texture(W + 2, seed=2), texture(W + 6, seed=3)
    alpha = np.zeros_like(fg)
    alpha[1:4, 8:12] = 1
    r = render_stereo_pair([Layer(bg, np.ones_like(bg), (2, 0, 0)), Layer(fg, alpha, (6, 0, 0))], W)
    square = alpha[:, :W] > 0
    assert np.array_equal(r.front, square.astype(int))
    assert np.array_equal(r.disparity, np.where(square, 6.0, 2.0))
    assert np.allclose(r.left, np.where(square, fg[:, :W], bg[:, :W]))
    right_square = np.zeros((H, W), bool)
    right_square[1:4, 2:6] = True                                  # columns 8-11 minus 6
    assert np.array_equal(r.front_right, right_square.astype(int))
    assert np.allclose(r.right, np.where(right_square, fg[:, 6:6 + W], bg[:, 2:2 + W]))
    # Left: background columns 4-7 of the square's rows map to right columns 2-5, behind the square;
    # columns 0-1 of every row map outside the right frame.
    expected = np.zeros((H, W), bool)
    expected[1:4, 4:8] = True
    expected[:, :2] = True
    assert np.array_equal(r.occluded, expected)
    # Right: background columns 6-9 of those rows come from left columns 8-11, behind the square there;
    # the last two columns come from beyond the left frame.
    expected_r = np.zeros((H, W), bool)
    expected_r[1:4, 6:10] = True
    expected_r[:, W - 2:] = True
    assert np.array_equal(r.occluded_right, expected_r)


def test_slanted_plane_maps_columns_affinely():
    a, b, c = 3.0, 0.02, 0.25
    wide = W + 8
    ramp = np.tile(np.arange(wide, dtype=np.float64), (H, 1)) / wide   # linear interpolation is exact on it
    r = render_stereo_pair([Layer(ramp, np.ones_like(ramp), (a, b, c))], W)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    assert np.allclose(r.disparity, a + b * xs + c * ys)
    src = (xs + a + c * ys) / (1 - b)
    assert np.allclose(r.right, src / wide) and np.allclose(r.disparity_right, src - xs)
    coef = np.array([[a, b, c]])
    assert np.array_equal(layer_disparity(coef, r.front), r.disparity)
    assert np.array_equal(layer_disparity(coef, r.front_right, right=True), r.disparity_right)


def test_layers_must_fit():
    tex = texture(W)
    with pytest.raises(PixelwiseError, match="output width"):
        render_stereo_pair([Layer(tex, np.ones_like(tex), (1, 0, 0))], W + 1)
    with pytest.raises(PixelwiseError, match="slope"):
        render_stereo_pair([Layer(tex, np.ones_like(tex), (1, 1.5, 0))], W)


def test_scenes_follow_the_protocol(solid_items, tmp_path):
    out = generate_fs_stereo("test", 8, seed=2, size=64, root=tmp_path)
    assert out["left"].shape == (8, 64, 64) and out["disparity"].shape == (8, 1, 64, 64)
    assert out["disparity"].dtype == np.float32 and out["valid"].dtype == out["occluded"].dtype == bool
    focal, baseline = out["focal"], out["baseline"]
    assert focal == 64.0 and baseline == 0.25
    # Garments are FashionScenes' garments: the left view's labels are its masks.
    _, masks = scenes.generate_scenes("test", 8, seed=2, size=64, root=tmp_path)
    assert np.array_equal(out["masks"], masks)
    depth = focal * baseline / out["disparity"][:, 0]
    garment = out["masks"] > 0
    assert GARMENT_DEPTH[0] - 1e-4 <= depth[garment].min() and depth[garment].max() <= GARMENT_DEPTH[1] + 1e-4
    assert depth[~garment].min() > GARMENT_DEPTH[1]                 # the background is farther than any garment
    assert 0 < out["disparity"].min() and out["disparity"].max() <= 16 + 1e-4   # 0-32 px at 128 -> 0-16 at 64
    assert 0 < out["occluded"].mean() < 0.3 and out["valid"].all()


def test_generation_is_deterministic_and_cached(solid_items, tmp_path):
    a = load_fs_stereo("val", 5, seed=1, size=32, root=tmp_path)
    assert len(list(tmp_path.glob("stereo_val_n5_seed1_size32_clean_v*.npz"))) == 1
    b = render_fs_stereo("val", 5, 1, 32)
    cached = load_fs_stereo("val", 5, seed=1, size=32, root=tmp_path)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True) and np.array_equal(a[k], cached[k], equal_nan=True)
    assert np.array_equal(render_fs_stereo("val", 3, 1, 32)["right"], a["right"][:3])   # prefix-stable
    assert not np.array_equal(render_fs_stereo("val", 5, 4, 32)["left"], a["left"])


def test_stored_maps_equal_the_renderer(solid_items):
    arrays = render_fs_stereo("test", 1, 2, 32)
    parts = fs_stereo.parse_variant(None)
    items = fs_stereo.load_fashion_mnist("test")[0].numpy()
    layers, _ = fs_stereo._scene_layers(*(np.random.default_rng(k) for k in ([2, 0], [2, 0, 100], [2, 0, 101])),
                                        items, [], 32, parts)
    r = render_stereo_pair(layers, 32)
    for view, disparity, valid, occluded in (("left", r.disparity, r.valid, r.occluded),
                                             ("right", r.disparity_right, r.valid_right, r.occluded_right)):
        maps = fs_stereo.scene_maps(arrays, 0, view)
        assert np.array_equal(maps["disparity"], disparity.astype(np.float32))
        assert np.array_equal(maps["valid"], valid) and np.array_equal(maps["occluded"], occluded)


@pytest.mark.parametrize("variant", VARIANTS + ("textured+noise",))
def test_variants_change_the_look_not_the_geometry(solid_items, variant):
    clean = render_fs_stereo("test", 2, 2, 32)
    shifted = render_fs_stereo("test", 2, 2, 32, variant)
    assert np.array_equal(clean["planes"], shifted["planes"], equal_nan=True)
    assert np.array_equal(clean["masks"], shifted["masks"])
    assert not np.array_equal(clean["left"], shifted["left"]) and not np.array_equal(clean["right"], shifted["right"])


def test_dataset_items(tmp_path):
    ds = FSStereo("test", root=tmp_path, size=32, n=3, variant="textured")
    assert len(ds) == 3 and ds.focal == 32.0 and ds.baseline == 0.25
    left, right, target = ds[0]
    assert isinstance(left, tv_tensors.Image) and isinstance(right, tv_tensors.Image)
    assert left.shape == right.shape == (3, 32, 32) and 0 <= left.min() and left.max() <= 1
    assert set(target) == {"disparity", "valid", "occluded"}
    assert target["disparity"].shape == (1, 32, 32) and target["disparity"].dtype == torch.float32
    assert target["valid"].dtype == target["occluded"].dtype == torch.bool


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(PixelwiseError, match="split"):
        FSStereo("training", root=tmp_path)
    with pytest.raises(PixelwiseError, match="variant"):
        render_fs_stereo("test", 1, 2, 32, "fog")
    with pytest.raises(PixelwiseError, match="variant"):
        render_fs_stereo("test", 1, 2, 32, "noise+noise")
