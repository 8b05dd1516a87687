import math

import numpy as np
import pytest
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.metrics.stereo import StereoMeter, disparity_errors


def hand_case():
    #                      err: 0.5  0    4    3    2    4     (96, not valid)
    pred = torch.tensor([[1.0, 2.0, 5.0, 10.0, 0.0, 100.0, 4.0]])
    target = torch.tensor([[1.5, 2.0, 1.0, 7.0, 2.0, 96.0, 100.0]])
    valid = torch.tensor([[True, True, True, True, True, True, False]])
    occluded = torch.tensor([[False, False, True, False, False, False, False]])
    return pred, target, valid, occluded


def test_hand_computed_case():
    out = disparity_errors(*hand_case(), focal=10.0, baseline=2.0)
    expected = {"epe": 13.5 / 6, "bad1": 4 / 6, "bad2": 3 / 6, "bad3": 2 / 6, "pixels": 6,
                # 4 px at true 96 is under 5% (4.8 px): not a KITTI outlier
                "d1": 1 / 6,
                # |Z_pred - Z_true| / Z_true = |t / p - 1|; p = 0 is clamped to 0.01 px: 2 / 0.01 - 1 = 199
                "abs_rel": (0.5 + 0 + 0.8 + 0.3 + 199 + 0.04) / 6,
                "epe_noc": 9.5 / 5, "bad1_noc": 3 / 5, "bad2_noc": 2 / 5, "bad3_noc": 1 / 5, "d1_noc": 0.0,
                "abs_rel_noc": (0.5 + 0 + 0.3 + 199 + 0.04) / 5, "pixels_noc": 5}
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, abs=1e-9), k


def test_without_occlusion_or_camera_only_the_all_figures():
    pred, target, valid, _ = hand_case()
    out = disparity_errors(pred, target, valid)
    assert "epe_noc" not in out and "abs_rel" not in out and out["epe"] == pytest.approx(13.5 / 6)


def reference(pred, target, valid, occluded, fb, eps=0.01):
    """The protocol's figures written directly in numpy, over all and non-occluded valid pixels."""
    out = {}
    for tail, m in (("", valid), ("_noc", valid & ~occluded)):
        p, t = pred[m].astype(np.float64), target[m].astype(np.float64)
        e = np.abs(p - t)
        out[f"epe{tail}"] = e.mean()
        for k in (1, 2, 3):
            out[f"bad{k}{tail}"] = np.mean(e > k)
        out[f"d1{tail}"] = np.mean((e > 3) & (e / np.abs(t) > 0.05))
        z_true, z_pred = fb / t, fb / np.maximum(p, eps)
        out[f"abs_rel{tail}"] = np.mean(np.abs(z_pred - z_true) / z_true)
    return out


def test_dataset_sums_equal_an_independent_reference():
    rng = np.random.default_rng(0)
    shape = (5, 1, 12, 16)
    target = rng.uniform(0.5, 40, shape).astype(np.float32)
    pred = (target + rng.normal(0, 3, shape)).astype(np.float32)
    valid, occluded = rng.random(shape) < 0.8, rng.random(shape) < 0.2
    valid[0] = False   # an image without ground truth still counts nowhere
    meter = StereoMeter(focal=20.0, baseline=0.5)
    for i in range(0, 5, 2):   # batches of unequal size
        meter.update(*(torch.from_numpy(a[i:i + 2]) for a in (pred, target, valid, occluded)))
    out = meter.summary()
    assert out["n"] == 5 and out["pixels"] == valid.sum()
    for k, v in reference(pred, target, valid, occluded, 10.0).items():
        assert out[k] == pytest.approx(v, rel=1e-9), k
    other = StereoMeter(focal=20.0, baseline=0.5)
    other.update(*(torch.from_numpy(a[:2]) for a in (pred, target, valid, occluded)))
    rest = StereoMeter(focal=20.0, baseline=0.5)
    rest.update(*(torch.from_numpy(a[2:]) for a in (pred, target, valid, occluded)))
    other.merge(rest)
    assert other.summary() == pytest.approx(out)


def test_pixels_are_weighted_not_images():
    meter = StereoMeter()
    meter.update(torch.full((1, 1, 1, 4), 2.0), torch.zeros(1, 1, 1, 4), torch.ones(1, 1, 1, 4, dtype=torch.bool))
    meter.update(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4), torch.tensor([[[[True, False, False, False]]]]))
    assert meter.summary()["epe"] == pytest.approx(8 / 5)   # per-image means would give 1.0


def test_empty_region_is_nan_and_bad_input_is_an_error():
    pred, target, valid, occluded = hand_case()
    assert math.isnan(disparity_errors(pred, target, torch.zeros_like(valid))["epe"])
    with pytest.raises(PixelwiseError, match="shape"):
        disparity_errors(pred, target[:, :3], valid)
    with pytest.raises(PixelwiseError, match="bool"):
        disparity_errors(pred, target, valid.float())
    nan_outside = pred.clone()
    nan_outside[0, 6] = float("nan")       # not a valid pixel: ignored
    assert disparity_errors(nan_outside, target, valid)["epe"] == pytest.approx(13.5 / 6)
    nan_inside = pred.clone()
    nan_inside[0, 0] = float("nan")
    with pytest.raises(PixelwiseError, match="NaN"):
        disparity_errors(nan_inside, target, valid)
    with pytest.raises(PixelwiseError, match="both focal and baseline"):
        StereoMeter(focal=1.0)


def test_bad_pixels_equal_opencv_contrib_when_present():
    # cv2.ximgproc (computeBadPixelPercent) ships only in opencv-contrib-python, not in
    # opencv-python-headless; without it the numpy reference above is the independent check.
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("cv2.ximgproc.computeBadPixelPercent needs opencv-contrib-python")
    rng = np.random.default_rng(1)
    fixed_true = rng.integers(16, 40 * 16, (24, 32)).astype(np.int16)      # disparity x 16, as OpenCV stores it
    fixed_pred = (fixed_true + rng.integers(-64, 65, fixed_true.shape)).astype(np.int16)
    percent = cv2.ximgproc.computeBadPixelPercent(fixed_true, fixed_pred, (0, 0, 32, 24), 32)   # 2 px
    out = disparity_errors(torch.from_numpy(fixed_pred / 16.0), torch.from_numpy(fixed_true / 16.0),
                           torch.ones(24, 32, dtype=torch.bool))
    assert out["bad2"] == pytest.approx(percent / 100)


def test_depth_cap_drops_far_truth_and_clips_far_predictions():
    # f * B = 20: true depths 13.3, 10, 20 (beyond the 15 m cap: left out), 2.86, 10, 0.208 m;
    # predicted 20 -> 15 (clipped), 10, -, 2, 2000 -> 15 (clipped), 0.2 m.
    out = disparity_errors(*hand_case(), focal=10.0, baseline=2.0, max_depth=15.0)
    expected = (15 / (20 / 1.5) - 1) + 0 + (1 - 2 / (20 / 7)) + (15 / 10 - 1) + (1 - 0.2 / (20 / 96))
    assert out["abs_rel"] == pytest.approx(expected / 5) and out["abs_rel_noc"] == pytest.approx(expected / 5)
    assert out["epe"] == pytest.approx(13.5 / 6)   # disparity figures do not change
    with pytest.raises(PixelwiseError, match="max_depth"):
        StereoMeter(focal=1.0, baseline=1.0, max_depth=0)
