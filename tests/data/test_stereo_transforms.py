import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from pixelwise.data.fs_stereo import FSStereo
from pixelwise.data.stereo_render import Layer, render_stereo_pair
from pixelwise.data.stereo_transforms import (RandomFlipSwap, RandomStereoCrop, StereoColorJitter,
                                              stereo_train_transform)
from pixelwise.errors import PixelwiseError

H, W = 8, 20
KEYS = ("disparity", "valid", "occluded")


def two_layer_scene() -> list[Layer]:
    """Background at disparity 2 and an opaque 4x5 block at disparity 6; integer shifts sample exactly."""
    rng = np.random.default_rng(0)
    bg, fg = rng.random((H, W + 2)), rng.random((H, W + 6))
    alpha = np.zeros_like(fg)
    alpha[2:6, 9:14] = 1
    return [Layer(bg, np.ones_like(bg), (2, 0, 0)), Layer(fg, alpha, (6, 0, 0))]


def as_sample(r):
    image = lambda a: tv_tensors.Image(torch.from_numpy(a).float()[None].expand(3, -1, -1).clone())  # noqa: E731
    target = {}
    for k in KEYS:
        target[k] = torch.from_numpy(getattr(r, k))[None]
        target[f"{k}_right"] = torch.from_numpy(getattr(r, f"{k}_right"))[None]
    target["disparity"], target["disparity_right"] = target["disparity"].float(), target["disparity_right"].float()
    return image(r.left), image(r.right), target


def mirrored(layers: list[Layer]) -> list[Layer]:
    """The layers of the mirror-image scene, seen by the old right camera as its left camera."""
    out = []
    for layer in layers:
        d = int(layer.disparity[0])
        cols = (W - 1 - np.arange(W + d)) + d          # old left-view column of each new column
        inside = (cols >= 0) & (cols < layer.image.shape[1])
        pick = lambda a: np.where(inside, a[:, cols.clip(0, a.shape[1] - 1)], 0.0)   # noqa: E731
        out.append(Layer(pick(layer.image), pick(layer.alpha), (d, 0.0, 0.0)))
    return out


def test_flip_and_swap_equals_rendering_the_mirrored_scene():
    layers = two_layer_scene()
    left, right, target = RandomFlipSwap(p=1.0)(*as_sample(render_stereo_pair(layers, W)))
    m_left, m_right, m_target = as_sample(render_stereo_pair(mirrored(layers), W))
    assert torch.equal(left, m_left) and torch.equal(right, m_right)
    for k in m_target:
        assert torch.equal(target[k], m_target[k]), k
    assert target["occluded"].any() and (target["disparity"] > 0).all()


def test_flip_and_swap_twice_is_the_identity_and_needs_right_truth():
    sample = as_sample(render_stereo_pair(two_layer_scene(), W))
    flip = RandomFlipSwap(p=1.0)
    back = flip(*flip(*sample))
    assert torch.equal(back[0], sample[0]) and torch.equal(back[1], sample[1])
    assert all(torch.equal(back[2][k], sample[2][k]) for k in sample[2])
    left_only = {k: sample[2][k] for k in KEYS}
    with pytest.raises(PixelwiseError, match="right view's ground truth"):
        flip(sample[0], sample[1], left_only)


def test_crop_takes_one_window_and_marks_new_frame_occlusions():
    r = render_stereo_pair(two_layer_scene(), W)
    left, right, target = as_sample(r)
    codes = torch.arange(H * W, dtype=torch.float32).reshape(H, W) / (H * W)
    left = tv_tensors.Image(torch.stack([codes, left[1], left[2]]))
    torch.manual_seed(3)
    out_left, out_right, out = RandomStereoCrop((5, 12))(left, right, target)
    assert out_left.shape == out_right.shape == (3, 5, 12) and isinstance(out_left, tv_tensors.Image)
    y, x = divmod(int(round(float(out_left[0, 0, 0]) * H * W)), W)
    window = (slice(y, y + 5), slice(x, x + 12))
    assert torch.equal(out_right, right[(slice(None),) + window])
    cols = torch.arange(12.0)
    assert torch.equal(out["disparity"], target["disparity"][(slice(None),) + window])
    assert torch.equal(out["occluded"], target["occluded"][(slice(None),) + window] | (cols - out["disparity"] < 0))
    assert torch.equal(out["occluded_right"], target["occluded_right"][(slice(None),) + window]
                       | (cols + out["disparity_right"] > 11))
    with pytest.raises(PixelwiseError, match="larger than the pair"):
        RandomStereoCrop(30)(left, right, target)


def test_jitter_is_one_map_for_both_views():
    torch.manual_seed(0)
    left = tv_tensors.Image(torch.rand(3, H, W))
    right = tv_tensors.Image(left.roll(-3, dims=-1))
    out_left, out_right, _ = StereoColorJitter(p=1.0)(left, right, {})
    assert not torch.equal(out_left, left)
    assert torch.allclose(out_right, out_left.roll(-3, dims=-1))
    with pytest.raises(PixelwiseError, match="differ"):
        StereoColorJitter()(left, tv_tensors.Image(torch.rand(3, H, W + 1)), {})


def test_dataset_transform_is_seeded_and_returns_left_truth(tmp_path):
    plain = FSStereo("test", root=tmp_path, size=32, n=2)
    ds = FSStereo("test", root=tmp_path, size=32, n=2, transform=RandomFlipSwap(p=1.0))
    left, right, target = ds[1]
    p_left, p_right, _ = plain[1]
    assert torch.equal(left, p_right.flip(-1)) and torch.equal(right, p_left.flip(-1))
    assert set(target) == set(KEYS)
    aug = FSStereo("test", root=tmp_path, size=32, n=2, transform=stereo_train_transform(24))
    aug.set_epoch(1)
    a, b = aug[0], aug[0]
    assert a[0].shape == (3, 24, 24) and torch.equal(a[0], b[0]) and torch.equal(a[2]["disparity"], b[2]["disparity"])
