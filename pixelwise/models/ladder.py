"""Ladder-style DenseNet (Kreso, Krapac, Segvic: "Ladder-style DenseNets for Semantic Segmentation of
Large Natural Images", ICCV-W 2017; "Efficient Ladder-style DenseNets for Semantic Segmentation of Large
Images", T-ITS 2020), laid out as the authors' code (github.com/ivankreso/LDN, models/ldn_semseg.py and
layers.py; their Cityscapes checkpoints load through models/ldn_authors.py).

DenseNet-121 with a 2x2 max pool after the stem (not torchvision's 3x3) whose third dense block is split
in halves by 2x2 average pooling, so that the deepest features lie at stride 64 and see a large context;
the last dense block's output goes without the final BN-ReLU (norm5) into spatial pyramid pooling; a
ladder of residual upsampling steps (1x1 lateral projection of each skip added to the upsampled path, a
1x1 bottleneck to 128 channels where wider, a 3x3 blend, plus the upsampled path itself, 1x1-projected
where the width changes) back to stride 4, widths 4f -> 2f, 2f, f, f (f = num_features = 128: the
authors' 512 -> 256, 256, 128, 128); a 1x1 classifier and bilinear upsampling to the input size.
Memory-efficient training is timm's checkpointed dense layers (only the concatenated inputs are kept)
plus checkpointed ladder steps.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import FeatureInfo

from pixelwise.models.backbones import Pretrained, channel_stats, create_timm_model
from pixelwise.models.checkpointing import set_grad_checkpointing
from pixelwise.models.layers import BNReluConv, CheckpointedBlock, EncoderDecoder, LadderDecoder, upsample
from pixelwise.models.normalize import Normalize
from pixelwise.models.registry import register_model


class SplitDenseNet(nn.Module):
    """A timm DenseNet on [0, 1] images, its dense block `split_block` split in halves by pooling.

    Returns five maps: the outputs of dense blocks 1 and 2 (strides 4, 8), both halves of the split
    block (strides 16, 32) and the last block's output (stride 64, before any BN-ReLU); `.feature_info`
    gives channels and strides.
    """

    def __init__(self, name: str = "densenet121", pretrained: Pretrained = False, in_chans: int = 3,
                 split_block: int = 3):
        super().__init__()
        self.body = create_timm_model(name, pretrained=pretrained, in_chans=in_chans)
        # The authors' stem pools 2x2 (torchvision's 3x3 windows overlap) and their ImageNet loader drops
        # norm5: the SPP starts with its own BN-ReLU.
        self.body.features.pool0 = nn.MaxPool2d(2, 2)
        self.body.features.norm5 = nn.Identity()
        cfg = getattr(self.body, "pretrained_cfg", None) or {}
        self.normalize = Normalize(*channel_stats(cfg.get("mean", IMAGENET_DEFAULT_MEAN),
                                                  cfg.get("std", IMAGENET_DEFAULT_STD), in_chans))
        self.split_block = split_block
        info, stride = [], 4
        for i in range(1, 5):
            layers = list(getattr(self.body.features, f"denseblock{i}").values())
            cin, growth = layers[0].norm1.num_features, layers[0].conv2.out_channels
            if i == split_block:
                info.append(dict(num_chs=cin + len(layers) // 2 * growth, reduction=stride,
                                 module=f"features.denseblock{i}"))
                stride *= 2
            if i < 4:
                info.append(dict(num_chs=cin + len(layers) * growth, reduction=stride,
                                 module=f"features.denseblock{i}"))
                stride *= 2
        info.append(dict(num_chs=self.body.num_features, reduction=stride, module="features.denseblock4"))
        self.feature_info = FeatureInfo(info, out_indices=tuple(range(len(info))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.body.features
        x = f.pool0(f.norm0(f.conv0(self.normalize(x))))
        skips = []
        for i in range(1, 5):
            block = getattr(f, f"denseblock{i}")
            if i == self.split_block:
                half, x = _split_dense_block(block, x)
                skips.append(half)
            else:
                x = block(x)
            if i < 4:
                skips.append(x)
                x = getattr(f, f"transition{i}")(x)
        return skips + [x]


def _split_dense_block(block: nn.ModuleDict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a timm DenseBlock with 2x2 average pooling of the concatenated features after half its layers.

    Returns (features at the split, at the input's resolution; the block's output at half of it).
    """
    layers = list(block.values())
    features = [x]
    for layer in layers[:len(layers) // 2]:
        features.append(layer(features))
    half = torch.cat(features, 1)
    # Later layers see the pooled concatenation as one input whose channels match their norm1 sizes.
    features = [F.avg_pool2d(half, 2)]
    for layer in layers[len(layers) // 2:]:
        features.append(layer(features))
    return half, torch.cat(features, 1)


class ResidualUpsample(CheckpointedBlock):
    """The authors' LDN ladder step: x (N, cin, h, w) upsampled to the skip's size, plus a 1x1 lateral
    projection of the skip (N, skip, H, W) -> cin; a 1x1 bottleneck to `blend_width` channels where cin is
    wider, a k x k blend -> cout; plus the upsampled x itself (1x1-projected where cin != cout).
    -> (N, cout, H, W)."""

    def __init__(self, cin: int, skip: int, cout: int, k: int = 3, blend_width: int = 128):
        super().__init__()
        self.lateral = BNReluConv(skip, cin, k=1)
        self.blend_bottleneck = BNReluConv(cin, blend_width, k=1) if cin > blend_width else None
        self.blend = BNReluConv(min(cin, blend_width), cout, k=k)
        self.residual = BNReluConv(cin, cout, k=1) if cin != cout else None

    def _forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.lateral(skip)
        x = upsample(x, skip.shape[-2:])
        y = skip + x
        if self.blend_bottleneck is not None:
            y = self.blend_bottleneck(y)
        y = self.blend(y)
        return y + (self.residual(x) if self.residual is not None else x)


class ResidualLadderDecoder(LadderDecoder):
    """LadderDecoder (SPP, upsampling steps, heads) whose steps are the authors' ResidualUpsample."""

    def __init__(self, channels: Sequence[int], num_classes: int, spp_size: int, widths: Sequence[int],
                 spp_grids: Sequence[int] = (8, 4, 2, 1), level_size: int = 128, outlier_head: bool = False):
        super().__init__(channels, num_classes, spp_size, widths, spp_grids, level_size, outlier_head)
        skips = list(reversed(channels[:-1]))
        ins = [spp_size, *widths[:-1]]
        self.upsample = nn.ModuleList(ResidualUpsample(cin, skip, cout, blend_width=level_size)
                                      for cin, skip, cout in zip(ins, skips, widths))


class LadderDenseNet(EncoderDecoder):
    """LDN: input (N, C, H, W) float in [0, 1] -> logits (N, num_classes, H, W), or
    (logits, outlier logits (N, 1, H, W)) with an outlier head. `.backbone` is the DenseNet
    (fine-tuned at a lower learning rate), `.head` the context module, ladder and classifiers.
    """

    def __init__(self, num_classes: int = 19, backbone: str = "densenet121", pretrained: Pretrained = False,
                 num_features: int = 128, spp_grids: Sequence[int] = (8, 4, 2, 1), in_chans: int = 3,
                 outlier_head: bool = False, grad_checkpointing: bool = False):
        super().__init__()
        f = num_features
        self.backbone = SplitDenseNet(backbone, pretrained=pretrained, in_chans=in_chans)
        self.head = ResidualLadderDecoder(self.backbone.feature_info.channels(), num_classes, spp_size=4 * f,
                                  widths=(2 * f, 2 * f, f, f), spp_grids=spp_grids, level_size=f,
                                  outlier_head=outlier_head)
        if grad_checkpointing:
            set_grad_checkpointing(self, True)


@register_model("ldn121", task="segmentation", pretrained=True)
def ldn121(**kwargs) -> LadderDenseNet:
    """Ladder-style DenseNet-121 (LDN121 with stride 64 context, ladder up to stride 4)."""
    return LadderDenseNet(backbone="densenet121", **kwargs)
