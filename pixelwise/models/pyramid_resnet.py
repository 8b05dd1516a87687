"""A ResNet run on every level of an image pyramid, laid out as in the SwiftNet authors' pyramid model
(Orsic et al., CVPR 2019; github.com/orsic/swiftnet, models/resnet/resnet_pyramid.py).

Level l of the pyramid is the normalized image resized by 2^-l from the full image (bicubic). All levels
share the convolutions, but every batch-norm layer of the stem and the residual blocks keeps one copy per
level (the downsampling shortcuts' batch norms are shared), because the statistics of a half-size image
differ from those of the full one. The features of a stage are taken before the stage's last ReLU.
"""
from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck
from torch.utils.checkpoint import checkpoint

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import Pretrained, create_backbone

STAGES = ("layer1", "layer2", "layer3", "layer4")


def level_norms(norm: nn.BatchNorm2d, levels: int) -> nn.ModuleList:
    """`levels` copies of a batch norm (its weights and statistics too: pretrained values start every level)."""
    return nn.ModuleList(copy.deepcopy(norm) for _ in range(levels))


class PyramidResNet(nn.Module):
    """Images (N, C, H, W) float in [0, 1] -> features[l][i] (N, c_i, H / (r_i 2^l), W / (r_i 2^l)) for
    pyramid level l and stage i (strides r = 4, 8, 16, 32), each taken before the stage's last ReLU.

    name: a timm ResNet of BasicBlocks or Bottlenecks with a plain 7x7 stem (resnet18, resnet34, resnet50;
    `timm_kwargs` such as channels=(32, 64, 128, 256) give narrower ones); pretrained: False or a local
    weight file of that ResNet (its batch norms are copied into every level, as the authors do with ImageNet
    weights); levels: pyramid levels.
    `.body` is the timm feature extractor with its batch norms replaced by one nn.ModuleList per layer
    (`bn1.0`, `bn1.1`, ... for the levels), `.normalize` the input normalization.
    """

    def __init__(self, name: str = "resnet18", pretrained: Pretrained = False, in_chans: int = 3,
                 levels: int = 3, **timm_kwargs):
        super().__init__()
        if levels < 1:
            raise PixelwiseError(f"pyramid_levels must be >= 1, got {levels}")
        features = create_backbone(name, pretrained=pretrained, in_chans=in_chans, **timm_kwargs)
        self.normalize, self.body, self.feature_info = features.normalize, features.body, features.feature_info
        self.levels = levels
        if not isinstance(getattr(self.body, "conv1", None), nn.Conv2d) or not all(
                hasattr(self.body, s) for s in STAGES):
            raise PixelwiseError(f"swiftnet_pyramid backbone {name!r}: needs a timm ResNet with a plain "
                                 f"7x7 stem (resnet18, resnet34, resnet50, ...)")
        self.body.bn1 = level_norms(self.body.bn1, levels)
        for stage in STAGES:
            for block in getattr(self.body, stage):
                _check_block(name, block)
                for i in range(1, 4 if isinstance(block, Bottleneck) else 3):
                    setattr(block, f"bn{i}", level_norms(getattr(block, f"bn{i}"), levels))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, x / 2, x / 4, ...]: every level resized from the full image x by bicubic interpolation
        (sizes rounded down, as F.interpolate does with a scale factor)."""
        return [x] + [F.interpolate(x, scale_factor=2.0 ** -level, mode="bicubic", align_corners=False)
                      for level in range(1, self.levels)]

    def forward_level(self, x: torch.Tensor, level: int) -> list[torch.Tensor]:
        """One normalized pyramid level through the ResNet with that level's batch norms."""
        b = self.body
        x = b.maxpool(b.act1(b.bn1[level](b.conv1(x))))
        # Recomputing a block's activations during backward pays only when a backward pass follows.
        recompute = getattr(b, "grad_checkpointing", False) and self.training and torch.is_grad_enabled()
        features = []
        for stage in STAGES:
            for block in getattr(b, stage):
                run = partial(_residual_block, block, level=level)
                pre = checkpoint(run, x, use_reentrant=False) if recompute else run(x)
                x = torch.relu(pre)
            features.append(pre)
        return features

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        # Normalized before resizing, as the authors do (resizing is linear, so the order changes only rounding).
        return [self.forward_level(p, level) for level, p in enumerate(self.pyramid(self.normalize(x)))]


def _check_block(name: str, block: nn.Module) -> None:
    if not isinstance(block, (BasicBlock, Bottleneck)):
        raise PixelwiseError(f"swiftnet_pyramid backbone {name!r}: block {type(block).__name__} is not a ResNet "
                             f"BasicBlock or Bottleneck")
    extras = [n for n in ("drop_block", "aa") if not isinstance(getattr(block, n, None), (nn.Identity, type(None)))]
    extras += [n for n in ("se", "drop_path") if getattr(block, n, None) is not None]
    if extras:
        raise PixelwiseError(f"swiftnet_pyramid backbone {name!r}: blocks with {', '.join(extras)} are not "
                             f"supported; use a plain ResNet (no drop_block, drop_path_rate, anti-aliasing or SE)")


def _residual_block(block: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """A timm BasicBlock/Bottleneck with the batch norms of `level`, returned before its final ReLU."""
    shortcut = x if block.downsample is None else block.downsample(x)
    convs = 3 if isinstance(block, Bottleneck) else 2
    for i in range(1, convs + 1):
        x = getattr(block, f"bn{i}")[level](getattr(block, f"conv{i}")(x))
        if i < convs:
            x = torch.relu(x)
    return x + shortcut
