"""Blocks shared by the segmenters: BN-ReLU-Conv units, spatial pyramid pooling, ladder upsampling steps,
the ladder decoder (SPP + upsampling steps + heads) of SwiftNet and LDN.

Every CheckpointedBlock recomputes its forward pass during backward when its `grad_checkpointing`
attribute is true (see pixelwise.models.checkpointing): activations inside the block are not kept.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


from pixelwise.models.outputs import SegmentationOutput


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) to (N, C, *size); align_corners=False as in SwiftNet."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class CheckpointedBlock(nn.Module):
    """A block whose `_forward(*inputs)` is recomputed during backward instead of keeping its inner
    activations, while `grad_checkpointing` is true (set by pixelwise.models.checkpointing)."""

    def __init__(self):
        super().__init__()
        self.grad_checkpointing = False

    def _forward(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        # Recomputation only pays when a backward pass follows.
        if (self.grad_checkpointing and self.training and torch.is_grad_enabled()
                and any(x.requires_grad for x in xs)):
            return checkpoint(self._forward, *xs, use_reentrant=False)
        return self._forward(*xs)


class BNReluConv(nn.Sequential):
    """Pre-activation unit: BatchNorm, ReLU, then a k x k convolution (padding k // 2).

    (N, cin, H, W) -> (N, cout, H, W). `bias` only where no normalization follows (classifiers).
    """

    def __init__(self, cin: int, cout: int, k: int = 3, bias: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class SpatialPyramidPooling(CheckpointedBlock):
    """Context from average pooling the deepest features over coarse grids (Zhao et al.; SwiftNet variant).

    The input is projected to `bottleneck` channels; each grid g is pooled to g x round(g * W / H) cells
    (so that cells stay roughly square on wide images), projected to `level_size` channels and upsampled
    back; everything is concatenated and fused by a 1x1 unit. (N, cin, H, W) -> (N, out, H, W).
    """

    def __init__(self, cin: int, bottleneck: int = 128, level_size: int = 42, out: int = 128,
                 grids: Sequence[int] = (8, 4, 2)):
        super().__init__()
        self.grids = tuple(grids)
        self.project = BNReluConv(cin, bottleneck, k=1)
        self.levels = nn.ModuleList(BNReluConv(bottleneck, level_size, k=1) for _ in self.grids)
        self.fuse = BNReluConv(bottleneck + len(self.grids) * level_size, out, k=1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.project(x)
        pooled = [x]
        for g, level in zip(self.grids, self.levels):
            cells = (g, max(1, round(g * w / h)))
            pooled.append(upsample(level(F.adaptive_avg_pool2d(x, cells)), (h, w)))
        return self.fuse(torch.cat(pooled, 1))


class Upsample(CheckpointedBlock):
    """One ladder step: x (N, cin, h, w) upsampled to the skip's size, plus a 1x1 lateral projection of
    the skip features (N, skip, H, W) -> cin channels, blended by a k x k unit -> (N, cout, H, W)."""

    def __init__(self, cin: int, skip: int, cout: int, k: int = 3):
        super().__init__()
        self.lateral = BNReluConv(skip, cin, k=1)
        self.blend = BNReluConv(cin, cout, k=k)

    def _forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.lateral(skip)
        return self.blend(upsample(x, skip.shape[-2:]) + skip)


class Blend(CheckpointedBlock):
    """Upsample x to the size of an already projected skip, add it, blend with a k x k unit.

    The pyramid-fusion SwiftNet's step, whose laterals are projected (and summed over pyramid levels)
    before they reach the upsampling path. x, skip: (N, C, h, w), (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, k: int = 3):
        super().__init__()
        self.blend = BNReluConv(channels, channels, k=k)

    def _forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blend(upsample(x, skip.shape[-2:]) + skip)


class SegmentationHeads(nn.Module):
    """Per-pixel classifiers on the final features: class logits and, optionally, one outlier logit.

    (N, C, h, w) -> logits (N, K, h, w), or SegmentationOutput(logits, outlier (N, 1, h, w)) with an outlier head.
    """

    def __init__(self, channels: int, num_classes: int, outlier_head: bool = False):
        super().__init__()
        self.logits = BNReluConv(channels, num_classes, k=1, bias=True)
        self.outlier = BNReluConv(channels, 1, k=1, bias=True) if outlier_head else None

    def forward(self, x: torch.Tensor):
        if self.outlier is None:
            return self.logits(x)
        return SegmentationOutput(self.logits(x), self.outlier(x))


class LadderDecoder(nn.Module):
    """SPP on the deepest features, then one upsampling step per skip, widths `widths`, to the finest skip.

    features: [skip_0 (finest), ..., skip_n, deepest] -> head outputs at the finest skip's resolution.
    """

    def __init__(self, channels: Sequence[int], num_classes: int, spp_size: int, widths: Sequence[int],
                 spp_grids: Sequence[int] = (8, 4, 2, 1), level_size: int = 128, outlier_head: bool = False):
        super().__init__()
        skips = list(reversed(channels[:-1]))
        if len(widths) != len(skips):
            raise ValueError(f"need one width per skip level ({len(skips)}), got {list(widths)}")
        self.spp = SpatialPyramidPooling(channels[-1], bottleneck=spp_size, level_size=level_size,
                                         out=spp_size, grids=spp_grids)
        ins = [spp_size, *widths[:-1]]
        self.upsample = nn.ModuleList(Upsample(cin, skip, cout)
                                      for cin, skip, cout in zip(ins, skips, widths))
        self.heads = SegmentationHeads(widths[-1], num_classes, outlier_head)

    def forward_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.spp(features[-1])
        for up, skip in zip(self.upsample, reversed(features[:-1])):
            x = up(x, skip)
        return x

    def forward(self, features: list[torch.Tensor]):
        return self.heads(self.forward_features(features))


def resize_outputs(out, size: Sequence[int]):
    """Bilinear upsampling of a head's output (a tensor, or a SegmentationOutput) to `size` (H, W)."""
    if isinstance(out, SegmentationOutput):
        return SegmentationOutput(*(upsample(o, size) for o in out))
    return upsample(out, size)


class EncoderDecoder(nn.Module):
    """A segmenter of `self.backbone` (image -> feature maps) and `self.head` (a decoder with heads).

    Subclasses build both; `encode` is what feeds the decoder (overridden by the pyramid variant).
    """

    def encode(self, x: torch.Tensor):
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final features (N, num_features, H / 4, W / 4) that the heads classify."""
        return self.head.forward_features(self.encode(x))

    def forward(self, x: torch.Tensor):
        return resize_outputs(self.head(self.encode(x)), x.shape[-2:])
