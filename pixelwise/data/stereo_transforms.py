"""Joint transforms of a rectified stereo pair that keep it rectified and its ground truth exact.

Each transform is called as `transform(left, right, target)` and returns the same three: left and
right tv_tensors.Image (C, H, W) float in [0, 1], target a dict of (1, H, W) tensors: "disparity"
(float32 px, left view), "valid", "occluded" (bool), and optionally the right view's ground truth
under the same names with the suffix "_right" (FSStereo passes it to its transform). Random draws
come from torch's default generator, which FSStereo seeds per item.

Vertical shifts, rotations and rescales along one axis are left out on purpose: each breaks
rectification or the meaning of disparity in pixels.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision import tv_tensors

from pixelwise.errors import PixelwiseError

Target = dict[str, torch.Tensor]


class StereoCompose:
    """Apply stereo transforms in order."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, left: torch.Tensor, right: torch.Tensor, target: Target):
        for t in self.transforms:
            left, right, target = t(left, right, target)
        return left, right, target


def _check_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    if left.shape != right.shape:
        raise PixelwiseError(f"stereo pair: left {tuple(left.shape)} and right {tuple(right.shape)} differ; "
                             "pass two views of one size and channel count")


class RandomStereoCrop:
    """The same random (h, w) window in both views and every ground-truth map.

    Disparity values are unchanged (both views move by the same offset); pixels whose match now
    lies outside the cropped frame become occluded: x - d < 0 in the left view, x + d > w - 1 in
    the right view.
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, left: torch.Tensor, right: torch.Tensor, target: Target):
        _check_pair(left, right)
        (h, w), (height, width) = self.size, left.shape[-2:]
        if h > height or w > width:
            raise PixelwiseError(f"stereo crop {self.size} is larger than the pair ({height}, {width}); "
                                 "choose a crop no larger than the images")
        y = int(torch.randint(0, height - h + 1, ()))
        x = int(torch.randint(0, width - w + 1, ()))
        crop = lambda t: t[..., y:y + h, x:x + w]   # noqa: E731
        out = {k: crop(v).clone() for k, v in target.items()}
        cols = torch.arange(w, dtype=torch.float32)
        if "occluded" in out:
            out["occluded"] |= out["valid"] & (cols - out["disparity"] < 0)
        if "occluded_right" in out:
            out["occluded_right"] |= out["valid_right"] & (cols + out["disparity_right"] > w - 1)
        wrap = lambda t: tv_tensors.Image(crop(t).clone())   # noqa: E731
        return wrap(left), wrap(right), out


class StereoColorJitter:
    """With probability p, one brightness and one contrast factor (uniform in 1 -/+ the given
    amounts) applied identically to both views, which keeps their photometric match."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, p: float = 0.8):
        self.brightness, self.contrast, self.p = brightness, contrast, p

    def __call__(self, left: torch.Tensor, right: torch.Tensor, target: Target):
        _check_pair(left, right)
        if float(torch.rand(())) >= self.p:
            return left, right, target
        gain = 1 + (2 * float(torch.rand(())) - 1) * self.brightness
        contrast = 1 + (2 * float(torch.rand(())) - 1) * self.contrast
        mean = left.mean()   # one pivot for both views, so the same map acts on both

        def jitter(t: torch.Tensor) -> tv_tensors.Image:
            return tv_tensors.Image((gain * ((t - mean) * contrast + mean)).clamp(0, 1))

        return jitter(left), jitter(right), target


class RandomFlipSwap:
    """With probability p, mirror both views and swap them: the new left is the mirrored right view.

    Mirroring maps column x to W - 1 - x, so a point at x_left, x_right = x_left - d lands at
    x'_right = x'_left - d with the roles of the views exchanged: disparity keeps its sign and
    value, and the new left view's ground truth is the mirrored ground truth of the old right view.
    It therefore needs the '_right' keys in the target (FSStereo provides them); a plain horizontal
    flip of one pair would give negative disparities and is not offered.
    """

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, left: torch.Tensor, right: torch.Tensor, target: Target):
        _check_pair(left, right)
        missing = [f"{k}_right" for k in ("disparity", "valid", "occluded") if k in target
                   and f"{k}_right" not in target]
        if missing:
            raise PixelwiseError(f"flip-and-swap needs the right view's ground truth ({', '.join(missing)}); "
                                 "use FSStereo's transform argument, which supplies it, or drop the flip")
        if float(torch.rand(())) >= self.p:
            return left, right, target
        flip = lambda t: t.flip(-1)   # noqa: E731
        out = {}
        for k, v in target.items():
            other = k[:-len("_right")] if k.endswith("_right") else f"{k}_right"
            out[other] = flip(v)
        return tv_tensors.Image(flip(right)), tv_tensors.Image(flip(left)), out


def stereo_train_transform(crop_size: int | Sequence[int] | None = None, flip: bool = True,
                           photometric: bool = True) -> StereoCompose:
    """Random crop (when `crop_size` is given), flip-and-swap and identical brightness/contrast jitter."""
    steps = [RandomStereoCrop(crop_size)] if crop_size is not None else []
    steps += [RandomFlipSwap()] if flip else []
    steps += [StereoColorJitter()] if photometric else []
    return StereoCompose(steps)
