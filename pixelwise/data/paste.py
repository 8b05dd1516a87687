"""Pasting negative objects into inlier scenes (Bevandic et al.): the training signal of an outlier head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pixelwise.labels import IGNORE_INDEX



def object_shapes(negatives: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Default object masks: (M, C, h, w) float in [0, 1] -> (M, h, w) bool, the pixels above
    `threshold` x the item's peak (the rule FashionScenes uses for garments)."""
    intensity = negatives.amax(1)
    peak = intensity.flatten(1).amax(1).clamp(min=1e-6)[:, None, None]
    return intensity > threshold * peak


def paste_negatives(images: torch.Tensor, masks: torch.Tensor, negatives: torch.Tensor,
                    gen: torch.Generator, prob: float = 0.5, count: tuple[int, int] = (1, 2),
                    size: tuple[int, int] = (24, 56), shapes: torch.Tensor | None = None,
                    jitter: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste random negative objects into a batch of scenes.

    images: (N, C, H, W) float in [0, 1]; masks: (N, H, W) int, 255 = ignore.
    negatives: (M, c, h, w) float in [0, 1] with c = 1 or C (gray negatives go to every channel);
    shapes: (M, h, w) bool object pixels (default `object_shapes(negatives)`).
    Each scene receives, with probability `prob`, between count[0] and count[1] objects (inclusive),
    each resized to a side of size[0]..size[1] px (at most the canvas) and placed fully inside it;
    jitter: give each pasted object a random gain g in [0.3, 1] and offset in [0, 1 - g], so that a
    model learns unfamiliar content rather than the negatives' brightness. Random draws come from
    `gen` only.
    Returns new tensors: images with the objects, semantic masks with pasted pixels set to 255 (so
    the semantic loss ignores them), and outlier targets (N, H, W) int64: 1 pasted, 0 elsewhere,
    255 where the input mask was already ignored.
    """
    n, c, h, w = images.shape
    if negatives.ndim != 4 or negatives.shape[1] not in (1, c):
        raise ValueError(f"negatives must be (M, 1 or {c}, h, w), got {tuple(negatives.shape)}")
    if shapes is None:
        shapes = object_shapes(negatives)
    images, masks = images.clone(), masks.clone()
    targets = torch.where(masks == IGNORE_INDEX, IGNORE_INDEX, 0).long()
    device = images.device
    for i in range(n):
        if torch.rand((), generator=gen) >= prob:
            continue
        for _ in range(int(torch.randint(count[0], count[1] + 1, (), generator=gen))):
            k = int(torch.randint(len(negatives), (), generator=gen))
            side = min(int(torch.randint(size[0], size[1] + 1, (), generator=gen)), h, w)
            y = int(torch.randint(0, h - side + 1, (), generator=gen))
            x = int(torch.randint(0, w - side + 1, (), generator=gen))
            obj = F.interpolate(negatives[k:k + 1].float(), size=(side, side), mode="bilinear",
                                antialias=True, align_corners=False)[0].clamp(0, 1).to(device)
            if jitter:
                gain = 0.3 + 0.7 * float(torch.rand((), generator=gen))
                obj = gain * obj + (1 - gain) * float(torch.rand((), generator=gen))
            inside = F.interpolate(shapes[k][None, None].float(), size=(side, side), mode="bilinear",
                                   align_corners=False)[0, 0].to(device) > 0.5
            region = images[i, :, y:y + side, x:x + side]
            region[:, inside] = obj.expand(c, -1, -1)[:, inside].to(images.dtype)
            masks[i, y:y + side, x:x + side][inside] = IGNORE_INDEX
            targets[i, y:y + side, x:x + side][inside] = 1
    return images, masks, targets
