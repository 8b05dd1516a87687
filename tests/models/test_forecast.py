"""F2F's parts: the deformable convolution against torchvision's operator, the single-frame model's
split at its forecast level, the frozen segmenter inside F2F and its rebuild from a run's weights, a
tiny forecaster fitting one clip, and the flow-warp baseline on known translations."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.ops import deform_conv2d

from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.models.flow_warp import farneback_flow, flow_warp_forecast, warp_labels
from pixelwise.models.forecast import sampled_deform_conv2d

TINY = dict(num_features=16, backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8})


@pytest.mark.parametrize("dilation", [1, 2])
def test_sampled_deform_conv_equals_torchvision(dilation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64, generator=g).requires_grad_()
    offset = (3 * torch.randn(2, 18, 7, 9, dtype=torch.float64, generator=g)).requires_grad_()  # some fall outside
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64, generator=g).requires_grad_()
    bias = torch.randn(5, dtype=torch.float64, generator=g)
    ours = sampled_deform_conv2d(x, offset, weight, bias, dilation=dilation)
    ref = deform_conv2d(x, offset, weight, bias, padding=dilation, dilation=dilation)
    torch.testing.assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours.square().sum(), (x, offset, weight)),
                    torch.autograd.grad(ref.square().sum(), (x, offset, weight))):
        torch.testing.assert_close(a, b)


def test_single_frame_model_splits_at_its_stride_8_level():
    torch.manual_seed(0)
    model = create_model("swiftnet_f2f", num_classes=4, **TINY).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        level = model.level_features(x)
        assert level.shape == (2, 16, 8, 8)
        torch.testing.assert_close(model.decode_level(level, (64, 64)), model(x))


def _segmenter_run(folder, torch_seed=0):
    torch.manual_seed(torch_seed)
    seg = create_model("swiftnet_f2f", num_classes=4, **TINY).eval()
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in seg.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model": "swiftnet_f2f", "model_kwargs": {"num_classes": 4, **TINY}}))
    return seg


def test_f2f_holds_the_frozen_segmenter_and_rebuilds_without_its_folder(tmp_path):
    seg = _segmenter_run(tmp_path / "seg")
    model = create_model("f2f", num_classes=4, pretrained=tmp_path / "seg", width=8, layers=1)
    frames = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(model.frame_features(frames)[:, 3], (32, 32)), seg(frames[:, 3]))
    assert not any(p.requires_grad for p in model.segmenter.parameters())
    model.train()
    assert not model.segmenter.training and model.forecaster.training
    # A run folder of F2F rebuilds with pretrained=False and its own weights: the same forecasts.
    rebuilt = create_model("f2f", num_classes=4, pretrained=False, segmenter_kwargs={"num_classes": 4, **TINY},
                           width=8, layers=1)
    rebuilt.load_state_dict(model.state_dict())
    x = frames.flatten(1, 2)
    for a, b in zip(model.eval()(x), rebuilt.eval()(x)):
        torch.testing.assert_close(a, b)
    with pytest.raises(PixelwiseError, match="not a finished segmentation run"):
        create_model("f2f", num_classes=4, pretrained=tmp_path / "nothing")
    with pytest.raises(PixelwiseError, match="stacked on channels"):
        model(torch.rand(1, 10, 32, 32))


def _moving_clip(size=32, steps=(0, 3, 6, 9, 12, 18), speed=1):
    """Frames of a bright square moving right by `speed` px per frame over a fixed texture: (6, 3, H, W)."""
    rng = np.random.default_rng(0)
    background = torch.from_numpy(rng.random((size, size)).astype(np.float32)) * 0.3
    frames = []
    for s in steps:
        f = background.clone()
        x0 = 4 + s * speed
        f[10:20, x0:x0 + 8] = 1.0
        frames.append(f.expand(3, -1, -1))
    return torch.stack(frames)


def test_a_tiny_forecaster_fits_one_clip():
    torch.manual_seed(0)
    model = create_model("f2f", num_classes=4, segmenter_kwargs={"num_classes": 4, **TINY}, width=16, layers=2)
    clip = _moving_clip()[None]
    with torch.no_grad():
        features = model.frame_features(clip)
    observed, future = features[:, :4], features[:, 4:]
    start = [F.mse_loss(observed[:, -1], future[:, k]).item() for k in range(2)]   # copy-last
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    for _ in range(150):
        short, mid = model.forecast(observed)
        loss = F.mse_loss(short, future[:, 0]) + F.mse_loss(mid, future[:, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in model.segmenter.parameters())
    model.eval()
    with torch.no_grad():
        short, mid = model.forecast(observed)
    end = [F.mse_loss(short, future[:, 0]).item(), F.mse_loss(mid, future[:, 1]).item()]
    assert end[0] < 0.05 * start[0] and end[1] < 0.05 * start[1], (start, end)


def test_warp_moves_labels_by_a_known_displacement():
    labels = np.zeros((20, 24), np.int64)
    labels[5:10, 6:12] = 3
    out = warp_labels(labels, np.broadcast_to(np.array([4.0, -2.0], np.float32), (20, 24, 2)))
    expected = np.zeros_like(labels)
    expected[3:8, 10:16] = 3                                  # 4 px right, 2 px up
    np.testing.assert_array_equal(out, expected)


def test_flow_warp_extrapolates_a_known_translation():
    """A smooth texture translated by (dx, dy) = (2, 1) px per 3 frames: Farneback recovers it, and the
    segmentation of the last frame moves by (2, 1) * h / 3 to horizon h."""
    rng = np.random.default_rng(1)
    coarse = torch.from_numpy(rng.random((1, 1, 12, 12)).astype(np.float32))
    texture = F.interpolate(coarse, size=(96, 96), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)
    before, last = texture[16:80, 16:80], texture[15:79, 14:78]          # content moved right 2, down 1
    flow = farneback_flow(np.uint8(before.numpy() * 255), np.uint8(last.numpy() * 255))
    inner = flow[16:48, 16:48].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, 0), [2.0, 1.0], atol=0.15)
    labels = torch.zeros(1, 64, 64, dtype=torch.long)
    labels[0, 20:40, 24:36] = 2
    short, mid = flow_warp_forecast(before.expand(1, 3, -1, -1), last.expand(1, 3, -1, -1), labels, 3, (3, 9))
    for warped, (dx, dy) in ((short, (2, 1)), (mid, (6, 3))):
        expected = torch.roll(labels, shifts=(dy, dx), dims=(1, 2))
        agree = (warped[0, 8:56, 8:56] == expected[0, 8:56, 8:56]).float().mean()
        assert agree > 0.98, float(agree)
