"""SwiftNet (Orsic, Kreso, Bevandic, Segvic, CVPR 2019: "In Defense of Pre-trained ImageNet
Architectures for Real-time Semantic Segmentation of Road-driving Images").

Single scale: an ImageNet backbone with four levels, spatial pyramid pooling on the deepest one, three
lean upsampling steps (1x1 lateral projection of the skip + upsampled path, 3x3 blend, 128 channels),
a 1x1 classifier at stride 4 and bilinear upsampling to the input size. With output_stride=2 (ours,
not the paper's) one more step takes in the backbone's stride-2 features, for objects with 1-2 px parts.

Pyramid fusion: one shared ResNet runs on an image pyramid (scales 1, 1/2, 1/4, each resized from the
full image by bicubic interpolation, with one set of batch norms per level: models/pyramid_resnet.py);
features of equal resolution from different pyramid levels are projected by bare 1x1 convolutions (one
per backbone stage, shared by the levels) and summed (interleaved pyramid fusion), and the upsampling
path climbs from stride 128 down to 4, which enlarges the receptive field without SPP. This is the
authors' layout (github.com/orsic/swiftnet, resnet_pyramid.py): same parameters, same logits for the same
weights; their checkpoints load through models/swiftnet_authors.py.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import REDUCTIONS, Pretrained, create_backbone
from pixelwise.models.checkpointing import set_grad_checkpointing
from pixelwise.models.layers import (Blend, EncoderDecoder, LadderDecoder, SegmentationHeads,
                                     upsample)
from pixelwise.models.pyramid_resnet import PyramidResNet
from pixelwise.models.registry import register_model

OUTPUT_STRIDES = {4: REDUCTIONS, 2: (2, *REDUCTIONS)}   # backbone feature strides per output stride


class SwiftNet(EncoderDecoder):
    """Single-scale SwiftNet. Input (N, C, H, W) float in [0, 1].

    Returns logits (N, num_classes, H, W), or (logits, outlier logits (N, 1, H, W)) with an outlier
    head. `.backbone` holds the pretrained part (fine-tuned at a lower learning rate), `.head` the rest.

    backbone: a timm model with features at strides 4-32; pretrained: False, a local weight file, or
    True for efficientnet_lite0 (see create_backbone); num_features: width of the upsampling path;
    spp_grids: pooling grids of the SPP (the authors' code lists (8, 4, 2, 1) but pools over the first
    three); outlier_head: add a one-logit outlier map; grad_checkpointing: memory-efficient training.
    output_stride: 4 (the paper) or 2, where one more upsampling step uses the backbone's stride-2
    features (the ceiling of perfect logits at stride 4 is mIoU 0.91 on FashionScenes, at stride 2 0.97:
    benchmarks/segmentation_ceiling.py);
    widths: channels of the upsampling steps, coarse to fine (default num_features each; for stride 2
    narrow the fine steps, e.g. (128, 128, 64, 32), or they cost more than the backbone).
    backbone_kwargs: passed to timm.create_model, e.g. {'channels': (32, 64, 128, 256)} for a ResNet
    of half the width, or {'drop_path_rate': 0.1}.
    """

    def __init__(self, num_classes: int = 19, backbone: str = "resnet18", pretrained: Pretrained = False,
                 num_features: int = 128, spp_grids: Sequence[int] = (8, 4, 2), in_chans: int = 3,
                 outlier_head: bool = False, grad_checkpointing: bool = False, output_stride: int = 4,
                 widths: Sequence[int] | None = None, backbone_kwargs: dict | None = None):
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise PixelwiseError(f"SwiftNet output_stride must be 4 or 2, got {output_stride!r}")
        reductions = OUTPUT_STRIDES[output_stride]
        # backbone_kwargs may pick the levels themselves (out_indices); the check below then names a mismatch.
        levels = dict(out_indices=tuple(range(len(reductions)))) if output_stride == 2 else {}
        self.backbone = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans,
                                        **{**levels, **(backbone_kwargs or {})})
        if tuple(self.backbone.feature_info.reduction()) != reductions:
            raise PixelwiseError(f"SwiftNet output_stride={output_stride} needs backbone features at strides "
                                 f"{list(reductions)}; {backbone!r} gives {self.backbone.feature_info.reduction()}")
        channels = self.backbone.feature_info.channels()
        widths = tuple(widths) if widths is not None else (num_features,) * (len(channels) - 1)
        # SPP: a bottleneck of num_features channels, one third of it per pooling grid (the authors' sizes).
        self.head = LadderDecoder(channels, num_classes, spp_size=num_features, widths=widths,
                                  spp_grids=spp_grids, level_size=num_features // len(spp_grids),
                                  outlier_head=outlier_head)
        if grad_checkpointing:
            set_grad_checkpointing(self, True)


class PyramidFusionDecoder(nn.Module):
    """Sums the projected features of equal resolution across pyramid levels and upsamples them.

    Level l of the pyramid (image scale 2^-l) gives features at strides r_i * 2^l; a bare 1x1 projection
    per backbone stage (shared by the levels, no normalization: the authors' `upsample_bottlenecks`) maps
    them to `num_features` channels; the sums per stride feed a ladder of blend steps from the coarsest
    stride to stride 4.
    """

    def __init__(self, channels: Sequence[int], num_classes: int, num_features: int = 128,
                 pyramid_levels: int = 3, outlier_head: bool = False):
        super().__init__()
        nf = num_features
        self.lateral = nn.ModuleList(nn.Conv2d(c, nf, 1, bias=False) for c in channels)
        num_strides = len(channels) + pyramid_levels - 1
        self.blend = nn.ModuleList(Blend(nf) for _ in range(num_strides - 1))
        self.heads = SegmentationHeads(nf, num_classes, outlier_head)

    def forward_features(self, pyramid_features: list[list[torch.Tensor]]) -> torch.Tensor:
        """pyramid_features[l][i]: stage i of pyramid level l -> fused features at stride r_0."""
        fused: dict[int, torch.Tensor] = {}
        for level, features in enumerate(pyramid_features):
            for stage, f in enumerate(features):
                p = self.lateral[stage](f)
                k = level + stage  # the stride index, once the image scale is accounted for
                # Sizes not divisible by 2^(levels + 4) round differently per level (where the authors'
                # code stops): align to the grid of the finest level.
                fused[k] = p if k not in fused else fused[k] + upsample(p, fused[k].shape[-2:])
        x = fused[len(fused) - 1]
        for blend, k in zip(self.blend, reversed(range(len(fused) - 1))):
            x = blend(x, fused[k])
        return x

    def forward(self, pyramid_features: list[list[torch.Tensor]]):
        return self.heads(self.forward_features(pyramid_features))


class SwiftNetPyramid(EncoderDecoder):
    """SwiftNet with interleaved pyramid fusion, the authors' layout. Input (N, C, H, W) float in [0, 1].

    `.backbone` (a PyramidResNet) runs the shared ResNet on the image and on `pyramid_levels - 1` smaller
    copies resized from it; returns logits (N, num_classes, H, W), or (logits, outlier logits (N, 1, H, W)).
    backbone: a timm ResNet (resnet18, resnet34, ...); pretrained: False or a local weight file of it;
    backbone_kwargs: passed to timm.create_model, e.g. {'channels': (32, 64, 128, 256)} for half width.
    """

    def __init__(self, num_classes: int = 19, backbone: str = "resnet18", pretrained: Pretrained = False,
                 num_features: int = 128, pyramid_levels: int = 3, in_chans: int = 3,
                 outlier_head: bool = False, grad_checkpointing: bool = False,
                 backbone_kwargs: dict | None = None):
        super().__init__()
        self.pyramid_levels = pyramid_levels
        self.backbone = PyramidResNet(backbone, pretrained=pretrained, in_chans=in_chans, levels=pyramid_levels,
                                      **(backbone_kwargs or {}))
        self.head = PyramidFusionDecoder(self.backbone.feature_info.channels(), num_classes, num_features,
                                         pyramid_levels, outlier_head)
        if grad_checkpointing:
            set_grad_checkpointing(self, True)


@register_model("swiftnet", task="segmentation", pretrained=True)
def swiftnet(**kwargs) -> SwiftNet:
    """Single-scale SwiftNet on any timm backbone with strides 4-32 (`backbone=`, default resnet18)."""
    return SwiftNet(**kwargs)


@register_model("swiftnet_rn18", task="segmentation", pretrained=True)
def swiftnet_rn18(**kwargs) -> SwiftNet:
    """SwiftNet-RN18, the paper's single-scale model."""
    return SwiftNet(backbone="resnet18", **kwargs)


@register_model("swiftnet_pyramid", task="segmentation", pretrained=True)
def swiftnet_pyramid(**kwargs) -> SwiftNetPyramid:
    """Pyramid-fusion SwiftNet on a timm ResNet (`backbone=`, default resnet18)."""
    return SwiftNetPyramid(**kwargs)


@register_model("swiftnet_pyramid_rn18", task="segmentation", pretrained=True)
def swiftnet_pyramid_rn18(**kwargs) -> SwiftNetPyramid:
    """Pyramid-fusion SwiftNet-RN18 with three pyramid levels."""
    return SwiftNetPyramid(backbone="resnet18", **kwargs)
