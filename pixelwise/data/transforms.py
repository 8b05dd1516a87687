"""Joint image + mask transforms (torchvision v2 with tv_tensors): random scale, crop, flip.

torchvision moves tv_tensors.Image and tv_tensors.Mask together and treats each correctly:
images are resized bilinearly, masks with nearest neighbour, and padding fills masks with the
ignore label. `seeded_call` makes the random draws of one call a function of a key, which keeps
training runs exactly resumable when the key is (seed, epoch, index).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from pixelwise.labels import IGNORE_INDEX



class RandomScale(v2.Transform):
    """Resize image and mask together by one factor drawn uniformly from `scale_range`.

    The output side is round(side * factor); masks use nearest-neighbour interpolation.
    """

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0)):
        super().__init__()
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < low <= high, got {tuple(scale_range)}")
        self.scale_range = (float(lo), float(hi))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = next(TF.get_size(x) for x in flat_inputs if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)))
        lo, hi = self.scale_range
        factor = lo + float(torch.rand(())) * (hi - lo)
        return {"size": [max(1, round(h * factor)), max(1, round(w * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"], antialias=True)


def train_transform(crop_size: int | Sequence[int], scale_range: Sequence[float] = (0.5, 2.0),
                    flip: bool = True, photometric: bool = False) -> v2.Compose:
    """The SwiftNet training augmentation: random scale, random crop padded with the ignore label, h-flip.

    crop_size: side (or (H, W)) of the output in pixels; smaller images are padded with 0 (image)
    and 255 (mask) before cropping. photometric: also random brightness/contrast, blur and noise on
    the image alone (the mask is untouched), which narrows the gap to shifted test domains.
    """
    size = [crop_size, crop_size] if isinstance(crop_size, int) else list(crop_size)
    steps = [RandomScale(scale_range),
             v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX})]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if photometric:
        steps += [v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.6)], p=0.8),
                  v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3),
                  v2.RandomApply([v2.GaussianNoise(sigma=0.06)], p=0.3)]
    return v2.Compose(steps)


def key_seed(key: Sequence[int]) -> int:
    """A 63-bit seed from a tuple of integers, e.g. (seed, epoch, index); independent streams per key."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key]).generate_state(2, np.uint64)[0] >> 1)


def seeded_call(transform, image: tv_tensors.Image, mask: tv_tensors.Mask,
                key: Sequence[int]) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """transform(image, mask) with torch's random draws seeded from `key`; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator: torch.manual_seed would also queue lazy seeding calls for every
        # accelerator backend (each recording a stack trace), ~1 ms per item.
        torch.default_generator.manual_seed(key_seed(key))
        return transform(image, mask)


class EpochSeededTransform:
    """Dataset mixin for a joint `transform(image, mask)` whose random draws for item i are a function
    of (seed, epoch, i) once the trainer has called `set_epoch`, so that runs resume exactly."""

    transform = None
    draw_seed = 0

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Make the transform's random draws for item i a function of (seed, epoch, i)."""
        self.draw_seed = seed * 1_000_003 + epoch + 1

    def apply_transform(self, image: tv_tensors.Image, mask: tv_tensors.Mask,
                        i: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """(image, mask) of item i through `transform`, unchanged without one."""
        if self.transform is None:
            return image, mask
        return seeded_call(self.transform, image, mask, (self.draw_seed, i))
