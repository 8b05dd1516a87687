"""The learned stereo network: its parts against direct computations, shapes and gradients of every
registered stereo model, and a tiny model that overfits one rendered pair."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelwise.data.stereo_render import Layer, render_stereo_pair
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, list_models
from pixelwise.models.stereo import PairOnChannels, correlation_volume, soft_argmin, warp_right

TINY = dict(max_disparity=16, num_features=16, match_features=8, width=16, refine_width=8,
            backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8})


def test_correlation_equals_a_direct_loop():
    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 5, 3, 9, generator=g), torch.randn(2, 5, 3, 9, generator=g)
    out = correlation_volume(left, right, 4)
    expected = torch.zeros(2, 4, 3, 9)
    for k in range(4):
        for x in range(k, 9):   # columns whose match x - k lies inside the right view
            expected[:, k, :, x] = (left[..., x] * right[..., x - k]).mean(1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_soft_argmin_of_sharp_and_split_costs():
    cost = torch.full((1, 5, 1, 2), 1e4)
    cost[0, 3, 0, 0] = 0                       # all weight on candidate 3
    cost[0, 1, 0, 1] = cost[0, 2, 0, 1] = 0    # half on 1, half on 2
    d = soft_argmin(cost, step=4)
    assert d.dtype == torch.float32 and torch.allclose(d[0, 0, 0], torch.tensor([12.0, 6.0]))


def test_warp_by_an_integer_disparity_is_a_shift():
    right = torch.rand(1, 2, 4, 10)
    warped = warp_right(right, torch.full((1, 1, 4, 10), 3.0))
    assert torch.allclose(warped[..., 3:], right[..., :7], atol=1e-6)   # left x sees right x - 3
    assert torch.allclose(warped[..., :3], right[..., :1].expand(-1, -1, -1, 3), atol=1e-6)   # border repeats


@pytest.mark.parametrize("name", list_models("stereo"))
def test_shapes_backward_and_export_wrapper(name):
    torch.manual_seed(0)
    model = create_model(name, **TINY)
    left, right = torch.rand(2, 3, 38, 50), torch.rand(2, 3, 38, 50)   # odd sizes at every stride
    outputs = model(left, right, every_scale=True)
    assert [o.shape for o in outputs] == [(2, 1, 38, 50)] * 3
    sum(o.mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        d = model(left[:1], right[:1])
    assert d.shape == (1, 1, 38, 50) and d.dtype == torch.float32 and (d >= 0).all()
    with torch.no_grad():
        pair = PairOnChannels(model)(torch.cat((left, right), 1))
        assert torch.allclose(pair.disparity, model(left, right))
    with pytest.raises(PixelwiseError, match="equal"):
        model(left, right[..., :48])
    with pytest.raises(PixelwiseError, match="multiple of 4"):
        create_model(name, max_disparity=30)


def test_tiny_model_overfits_one_pair():
    # A textured background at 2 px and a square at 9 px (hand-made layers, exact ground truth).
    rng = np.random.default_rng(0)
    size = 32
    bg, fg = rng.random((size, size + 12)), rng.random((size, size + 12))
    alpha = np.zeros_like(fg)
    alpha[8:22, 10:24] = 1
    r = render_stereo_pair([Layer(bg, np.ones_like(bg), (2.0, 0, 0)), Layer(fg, alpha, (9.0, 0, 0))], size)
    left, right = (torch.from_numpy(v).float().expand(1, 3, -1, -1).contiguous() for v in (r.left, r.right))
    true, valid = torch.from_numpy(r.disparity).float()[None, None], torch.from_numpy(r.valid)[None, None]
    noc = valid & ~torch.from_numpy(r.occluded)[None, None]
    torch.manual_seed(0)
    model = create_model("swiftnet_stereo", **TINY)
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(150):
        loss = sum(w * F.smooth_l1_loss(o[valid], true[valid])
                   for w, o in zip((0.5, 0.7, 1.0), model(left, right, every_scale=True)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Measured with batch statistics: at 32 px the deepest features are 1x1, and batch-norm's running
    # variance over two values per channel (unbiased) is twice the batch's own.
    with torch.no_grad():
        pred = model(left, right)
    assert (pred - true)[noc].abs().mean() < 0.25   # px; measured 0.05; an untrained model is off by several
